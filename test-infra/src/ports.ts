/**
 * Free TCP ports on 127.0.0.1.
 *
 * @module
 */
import net from 'node:net';

const handedOut = new Set<number>();

function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const got = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => resolve(got));
    });
  });
}

/**
 * A port nobody listens on right now (and that this process has not handed out before).
 * With `alsoFree`, the ports at those offsets must be free too (Redis Cluster needs port + 10000
 * for its cluster bus), so the port is picked below 55535.
 */
export async function freePort(options: { alsoFree?: readonly number[] } = {}): Promise<number> {
  const offsets = options.alsoFree ?? [];
  for (let tries = 0; tries < 200; tries++) {
    const candidate = offsets.length === 0 ? await probe(0) : 20_000 + Math.floor(Math.random() * 30_000);
    if (candidate === undefined || handedOut.has(candidate)) continue;
    if (offsets.length > 0 && (await probe(candidate)) === undefined) continue;
    let ok = true;
    for (const offset of offsets) {
      if ((await probe(candidate + offset)) === undefined) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    handedOut.add(candidate);
    return candidate;
  }
  throw new Error('No free TCP port found on 127.0.0.1 after 200 tries.');
}

/** Resolves once something accepts TCP connections on `port`, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`Nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms.`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
