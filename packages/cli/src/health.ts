/**
 * The optional health endpoint of `lightbus run --health-port N` (node:http):
 * `GET /healthz` answers 200 while the process is alive, `GET /readyz` 200 once the worker has
 * started and 503 while it is starting or stopping.
 *
 * @module
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError } from './errors.js';

/** The worker's state as the health endpoint reports it. */
export type HealthState = 'starting' | 'ready' | 'stopping';

/** A running health endpoint. */
export interface HealthServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** Changes what `/readyz` answers. */
  setState(state: HealthState): void;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Starts the health endpoint on `port` (0 picks a free one) and `host`. */
export async function startHealthServer(port: number, host: string): Promise<HealthServer> {
  let state: HealthState = 'starting';
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const send = (status: number, body: Record<string, unknown>) => {
      response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(JSON.stringify(body));
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, { error: 'use GET' });
    if (path === '/healthz') return send(200, { status: 'alive' });
    if (path === '/readyz') return send(state === 'ready' ? 200 : 503, { status: state });
    return send(404, { error: 'not found: use /healthz or /readyz' });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new CliError(`The health endpoint cannot listen on ${host}:${port}: ${error.code ?? error.message}. Choose another --health-port.`, { cause: error })),
    );
    server.listen(port, host, () => resolvePromise());
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    setState(next) {
      state = next;
    },
    close() {
      return new Promise<void>((resolvePromise) => {
        server.close(() => resolvePromise());
        server.closeAllConnections();
      });
    },
  };
}
