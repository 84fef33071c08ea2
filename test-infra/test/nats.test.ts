import net from 'node:net';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { readNatsInfo, startNats, testCertificates, type NatsInstance } from '../src/index.js';

const started: NatsInstance[] = [];
afterAll(async () => {
  await Promise.all(started.map((n) => n.stop()));
});

async function track(instance: Promise<NatsInstance>): Promise<NatsInstance> {
  const n = await instance;
  started.push(n);
  return n;
}

/** Sends CONNECT (+ PING) on a plain connection and returns the first reply line after INFO. */
function connectReply(port: number, connect: Record<string, unknown>): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let sent = false;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\r\n');
      if (!sent && lines[0]!.startsWith('INFO')) {
        sent = true;
        socket.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...connect })}\r\nPING\r\n`);
      }
      const reply = lines.slice(1).find((l) => l.length > 0);
      if (reply) {
        socket.destroy();
        resolve(reply);
      }
    });
    socket.once('error', reject);
  });
}

describe('startNats', () => {
  it('runs JetStream and keeps its store across a SIGKILL and restart', async () => {
    const nats = await track(startNats({ jetstream: true }));
    const info = await nats.info();
    expect(info['jetstream']).toBe(true);
    expect(nats.port).not.toBe(4222);
    const pid = nats.pid;
    await nats.kill();
    await expect(readNatsInfo(nats.port, 300)).rejects.toThrow();
    await nats.restart();
    expect(nats.pid).not.toBe(pid);
    expect((await nats.info())['jetstream']).toBe(true);
  });

  it('pauses and resumes', async () => {
    const nats = await track(startNats({ jetstream: false }));
    nats.pause();
    await expect(readNatsInfo(nats.port, 300)).rejects.toThrow(/no INFO/);
    nats.resume();
    expect((await nats.info())['port']).toBe(nats.port);
  });

  it('requires the user and password', async () => {
    const nats = await track(startNats({ jetstream: false, auth: true }));
    const auth = nats.auth as { user: string; pass: string };
    expect((await nats.info())['auth_required']).toBe(true);
    expect(await connectReply(nats.port, { user: auth.user, pass: auth.pass })).toBe('PONG');
    expect(await connectReply(nats.port, { user: auth.user, pass: 'wrong' })).toMatch(/Authorization Violation/);
  });

  it('requires the token', async () => {
    const nats = await track(startNats({ jetstream: false, auth: { token: 'lbtest-token-1234' } }));
    expect(await connectReply(nats.port, { auth_token: 'lbtest-token-1234' })).toBe('PONG');
    expect(await connectReply(nats.port, {})).toMatch(/Authorization Violation/);
  });

  it('serves TLS: the handshake succeeds with the harness CA', async () => {
    const nats = await track(startNats({ jetstream: false, tls: true }));
    expect(nats.url.startsWith('tls://')).toBe(true);
    const certs = testCertificates();
    const authorized = await new Promise<boolean>((resolve, reject) => {
      const raw = net.connect({ host: '127.0.0.1', port: nats.port });
      raw.once('data', (d: Buffer) => {
        const info = JSON.parse(d.toString().slice(5).split('\r\n')[0]!) as Record<string, unknown>;
        if (info['tls_required'] !== true) reject(new Error('tls_required not set'));
        raw.removeAllListeners('data');
        const secure = tls.connect({ socket: raw, ca: certs.ca, servername: 'localhost' });
        secure.once('secureConnect', () => {
          resolve(secure.authorized);
          secure.destroy();
        });
        secure.once('error', reject);
      });
      raw.once('error', reject);
    });
    expect(authorized).toBe(true);
  });
});
