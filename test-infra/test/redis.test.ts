import { existsSync } from 'node:fs';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { respCommand, startRedis, startRedisCluster, testCertificates, type RedisInstance } from '../src/index.js';

const started: RedisInstance[] = [];
afterAll(async () => {
  await Promise.all(started.map((r) => r.stop()));
});

async function track(instance: Promise<RedisInstance>): Promise<RedisInstance> {
  const r = await instance;
  started.push(r);
  return r;
}

describe('startRedis', () => {
  it('keeps acknowledged writes across a SIGKILL and restart (appendonly), on the same port', async () => {
    const redis = await track(startRedis({ appendonly: true }));
    expect(redis.port).not.toBe(6379);
    expect(await redis.command(['SET', 'k', 'v'])).toBe('OK');
    const firstPid = redis.pid;
    await redis.kill();
    expect(redis.running).toBe(false);
    await expect(redis.command(['PING'])).rejects.toThrow();
    await redis.restart();
    expect(redis.pid).not.toBe(firstPid);
    expect(await redis.command(['GET', 'k'])).toBe('v');
  });

  it('loses everything on restart without appendonly', async () => {
    const redis = await track(startRedis({ appendonly: false }));
    await redis.command(['SET', 'k', 'v']);
    await redis.restart({ hard: true });
    expect(await redis.command(['GET', 'k'])).toBe(null);
  });

  it('pauses (no answers, connection kept) and resumes', async () => {
    const redis = await track(startRedis({ appendonly: false }));
    redis.pause();
    await expect(respCommand({ port: redis.port, timeoutMs: 300 }, ['PING'])).rejects.toThrow(/did not answer/);
    redis.resume();
    expect(await redis.command(['PING'])).toBe('PONG');
  });

  it('stop() kills the server and deletes its folder', async () => {
    const redis = await startRedis({ appendonly: true });
    const { dir, pid } = redis;
    await redis.stop();
    await redis.stop();
    expect(existsSync(dir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('serves TLS only, with a certificate for 127.0.0.1 signed by the harness CA', async () => {
    const redis = await track(startRedis({ appendonly: false, tls: true }));
    expect(redis.url.startsWith('rediss://')).toBe(true);
    expect(await redis.command(['PING'])).toBe('PONG');
    const certs = testCertificates();
    // The certificate is valid for the IP address too (no servername override).
    const socket = tls.connect({ host: '127.0.0.1', port: redis.port, ca: certs.ca });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    expect(socket.authorized).toBe(true);
    socket.destroy();
    // A client that trusts another CA refuses the handshake; a plain-text client gets nothing.
    await expect(respCommand({ port: redis.port, tls: { ca: readFileSync(certs.otherCaFile) } }, ['PING'])).rejects.toThrow(/certificate/i);
    await expect(respCommand({ port: redis.port, timeoutMs: 500 }, ['PING'])).rejects.toThrow();
  });

  it('requires the ACL user and password; the default user is off', async () => {
    const redis = await track(startRedis({ appendonly: false, acl: true }));
    const user = redis.user!;
    expect(redis.url).toContain(`${user.username}:`);
    expect(await redis.command(['PING'])).toBe('PONG');
    const anonymous = await respCommand({ port: redis.port }, ['PING']);
    expect(String(anonymous)).toMatch(/NOAUTH/);
    const wrong = await respCommand({ port: redis.port, auth: { username: user.username, password: 'wrong' } }, ['PING']);
    expect(String(wrong)).toMatch(/WRONGPASS/);
  });
});

describe('startRedisCluster', () => {
  it('starts 3 masters that cover every slot', async () => {
    const cluster = await startRedisCluster({ masters: 3, appendonly: false });
    try {
      expect(cluster.nodes).toHaveLength(3);
      const info = String(await cluster.nodes[0]!.command(['CLUSTER', 'INFO']));
      expect(info).toMatch(/cluster_state:ok/);
      expect(info).toMatch(/cluster_slots_assigned:16384/);
      expect(info).toMatch(/cluster_known_nodes:3/);
      // A key lands on exactly one node; the others redirect.
      const replies = await Promise.all(cluster.nodes.map((n) => n.command(['SET', 'lbtest_key', '1'])));
      expect(replies.filter((r) => r === 'OK')).toHaveLength(1);
      expect(replies.filter((r) => r instanceof Error && /MOVED/.test(r.message))).toHaveLength(2);
    } finally {
      await cluster.stop();
    }
  });
});
