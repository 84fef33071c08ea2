// pnpm start: the payments worker in a child process, the shop in this one.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mixFromEnv } from './config.js';
import { runShop } from './shop.js';

const mix = mixFromEnv();
console.log(`RPCs and results over NATS; events over ${mix.events === 'amqp' ? 'RabbitMQ' : 'Redis'}; schemas over Redis`);
const worker = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./payments-service.ts', import.meta.url))], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve, reject) => {
  worker.stdout.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('payments_service ready')) resolve();
  });
  worker.once('exit', (code) => reject(new Error(`the payments worker exited with code ${code}`)));
});
try {
  const { heard } = await runShop(3, mix);
  console.log(`${heard.length} of 3 charges heard`);
} finally {
  worker.kill('SIGTERM');
}
