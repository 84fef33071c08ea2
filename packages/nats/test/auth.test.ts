import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, newMessageId, silentLogger } from '@lightbus/core';
import { NatsResultTransport } from '../src/result.js';
import { NatsRpcTransport } from '../src/rpc.js';
import type { NatsTransportOptions } from '../src/options.js';
import { PrivateNatsServer, freePort } from './private-server.js';

// Private servers with authentication and TLS (the shared server has neither).
const servers: PrivateNatsServer[] = [];
const dir = mkdtempSync(join(tmpdir(), 'lightbus-nats-tls-'));
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function serve(args: string[]): Promise<number> {
  const port = await freePort();
  const server = new PrivateNatsServer(port, args);
  servers.push(server);
  await server.start();
  return port;
}

const context = { serviceName: 'svc', processName: 'p', logger: silentLogger };

/** One RPC round trip through the transports built with `options`. */
async function roundTrip(options: NatsTransportOptions): Promise<unknown> {
  const rpc = new NatsRpcTransport(options, context);
  const results = new NatsResultTransport(options, context);
  try {
    await rpc.open();
    await results.open();
    const controller = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume(['auth_test.api'], { signal: controller.signal })) {
        await results.send(m.returnPath, { id: newMessageId(), rpcMessageId: m.id, error: false, result: m.kwargs['x'] }, { rpc: m });
      }
    })();
    const pending = await results.prepare({ id: 'c1', apiName: 'auth_test.api', procedureName: 'p' });
    await rpc.call({ id: 'c1', apiName: 'auth_test.api', procedureName: 'p', kwargs: { x: 42 }, returnPath: pending.returnPath }, { timeoutMs: 3000 });
    const result = await pending.wait({ timeoutMs: 3000 });
    controller.abort();
    await loop;
    return result.result;
  } finally {
    await rpc.close();
    await results.close();
  }
}

describe('nats authentication and TLS', () => {
  it('connects with user and password, and refuses a wrong password without showing it', async () => {
    const port = await serve(['--user', 'bob', '--pass', 's3cret-pass']);
    await expect(roundTrip({ servers: `nats://127.0.0.1:${port}`, user: 'bob', pass: 's3cret-pass' })).resolves.toBe(42);
    const error = (await roundTrip({ servers: `nats://127.0.0.1:${port}`, user: 'bob', pass: 'wrong-pass' }).catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ code: ErrorCodes.TRANSPORT_ERROR });
    expect(error.message).toMatch(/Could not connect to NATS/);
    expect(error.message).not.toContain('wrong-pass');
  });

  it('connects with a token', async () => {
    const port = await serve(['--auth', 'tok-123456']);
    await expect(roundTrip({ servers: `nats://127.0.0.1:${port}`, token: 'tok-123456' })).resolves.toBe(42);
    await expect(roundTrip({ servers: `nats://127.0.0.1:${port}`, token: 'nope' })).rejects.toMatchObject({ code: ErrorCodes.TRANSPORT_ERROR });
  });

  it('connects over TLS with a CA file, to the second of two servers when the first is down', async () => {
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=lightbus test CA');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost" > san.ext'], { cwd: dir });
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
    const port = await serve(['--tls', '--tlscert', join(dir, 'server.pem'), '--tlskey', join(dir, 'server.key')]);
    const down = await freePort();
    const options = { servers: [`nats://127.0.0.1:${down}`, `tls://127.0.0.1:${port}`], tls: { ca: join(dir, 'ca.pem') } };
    await expect(roundTrip(options)).resolves.toBe(42);
  });
});
