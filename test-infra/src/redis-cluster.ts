/**
 * A private Redis Cluster: N masters (redis-server --cluster-enabled yes), joined with
 * `redis-cli --cluster create ... --cluster-yes`. Each node is a {@link RedisInstance} that can
 * be killed, paused and restarted on its own.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { startRedis, type RedisInstance } from './redis.js';

const run = promisify(execFile);

/** Options of {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** Number of master nodes (at least 3, as redis-cli requires). Default 3. */
  masters?: number;
  /** Append-only files on. Default true. */
  appendonly?: boolean;
  /** `cluster-node-timeout` in milliseconds. Default 2000. */
  nodeTimeoutMs?: number;
}

/** A running private Redis Cluster. */
export interface RedisClusterInstance {
  /** The nodes, masters only. */
  readonly nodes: readonly RedisInstance[];
  /** `redis://127.0.0.1:<port>` of every node (seed URLs). */
  readonly urls: readonly string[];
  /** `[{ host, port }]` of every node, as cluster clients take them. */
  readonly startupNodes: ReadonlyArray<{ host: string; port: number }>;
  /** Resolves once every node reports `cluster_state:ok`. */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every node and deletes their folders. Idempotent. */
  stop(): Promise<void>;
}

async function clusterState(node: RedisInstance): Promise<string> {
  try {
    const info = await node.command(['CLUSTER', 'INFO']);
    return typeof info === 'string' ? (/cluster_state:(\w+)/.exec(info)?.[1] ?? '?') : '?';
  } catch {
    return 'down';
  }
}

/**
 * Starts a Redis Cluster of `masters` private nodes on free ports (port + 10000, the cluster
 * bus, free too), assigns the slots with `redis-cli --cluster create`, and waits until every
 * node reports `cluster_state:ok`.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisClusterInstance> {
  const masters = options.masters ?? 3;
  if (masters < 3) throw new Error('A Redis Cluster needs at least 3 masters.');
  const nodes: RedisInstance[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort({ alsoFree: [10_000] });
      nodes.push(
        await startRedis({
          port,
          appendonly: options.appendonly ?? true,
          extraConfig: ['cluster-enabled yes', 'cluster-config-file nodes.conf', `cluster-node-timeout ${options.nodeTimeoutMs ?? 2000}`],
        }),
      );
    }
    try {
      await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    } catch (error) {
      const out = (error as { stdout?: string; stderr?: string }).stdout ?? '';
      throw new Error(`redis-cli --cluster create failed: ${out}${(error as { stderr?: string }).stderr ?? String(error)}`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const waitUntilHealthy = async (timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(nodes.map(clusterState));
      if (states.every((s) => s === 'ok')) return;
      if (Date.now() > deadline) throw new Error(`The Redis Cluster is not healthy after ${timeoutMs} ms: ${states.join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await waitUntilHealthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    startupNodes: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    waitUntilHealthy,
    stop,
  };
}
