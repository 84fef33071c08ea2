/**
 * `@lightbus/test-infra`: the harness the Lightbus tests use to run brokers they may break.
 *
 * - {@link startRedis}, {@link startRedisCluster}, {@link startNats}: private servers on free
 *   ports, in temp folders, that a test may kill (SIGKILL), pause (SIGSTOP/SIGCONT) and restart
 *   with their data; killed when the test process ends, whatever the way.
 * - {@link testCertificates}: a CA and a server certificate for 127.0.0.1/localhost (openssl).
 * - ACL users (Redis), user/password and token (NATS), {@link createRabbitVhost} (a vhost and
 *   user on the shared RabbitMQ, deleted afterwards).
 * - {@link spawnTracked}: any child process with the same guarantees (the chaos workers).
 *
 * @packageDocumentation
 */
export { startRedis, type StartRedisOptions, type RedisInstance, type RedisAclUser } from './redis.js';
export { startRedisCluster, type StartRedisClusterOptions, type RedisClusterInstance } from './redis-cluster.js';
export { startNats, readNatsInfo, type StartNatsOptions, type NatsInstance, type NatsAuth } from './nats.js';
export { createRabbitVhost, listRabbitVhosts, type RabbitVhost } from './rabbitmq.js';
export { testCertificates, type TestCertificates } from './tls.js';
export { respCommand, type RespTarget, type RespValue } from './resp.js';
export { freePort, waitForPort } from './ports.js';
export {
  spawnTracked,
  killHard,
  stopGracefully,
  isRunning,
  killAllTracked,
  makeTempDir,
  removeTempDir,
  trackedCount,
  type TrackedProcess,
} from './process.js';
