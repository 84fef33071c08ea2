// Checks that the brokers the tests use are reachable, and says how to start them if not.
import net from 'node:net';

const servers = [
  { name: 'Redis', port: 6379 },
  { name: 'NATS (JetStream)', port: 4222 },
  { name: 'RabbitMQ', port: 5672 },
];

function reachable(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const missing = [];
for (const server of servers) if (!(await reachable(server.port))) missing.push(server);
if (missing.length > 0) {
  console.error(
    `The tests need ${missing.map((s) => `${s.name} on 127.0.0.1:${s.port}`).join(', ')}, which did not answer.\n` +
      'Start them with: bash test-infra/ensure-servers.sh',
  );
  process.exit(1);
}
console.log('check-servers: Redis, NATS and RabbitMQ are reachable');
