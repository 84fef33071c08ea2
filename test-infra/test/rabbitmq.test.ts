import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { createRabbitVhost, listRabbitVhosts } from '../src/index.js';

function rabbitReachable(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: 5672 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('createRabbitVhost', () => {
  it('creates a vhost and user with unique names, and deletes both', { timeout: 60_000 }, async () => {
    if (!(await rabbitReachable())) throw new Error('RabbitMQ is not running on 127.0.0.1:5672: bash test-infra/ensure-servers.sh');
    const a = await createRabbitVhost();
    const b = await createRabbitVhost();
    try {
      expect(a.vhost).not.toBe(b.vhost);
      expect(a.url).toBe(`amqp://${a.username}:${a.password}@127.0.0.1:5672/${a.vhost}`);
      const vhosts = await listRabbitVhosts();
      expect(vhosts).toEqual(expect.arrayContaining([a.vhost, b.vhost]));
    } finally {
      await a.delete();
      await b.delete();
    }
    const after = await listRabbitVhosts();
    expect(after).not.toContain(a.vhost);
    expect(after).not.toContain(b.vhost);
  });
});
