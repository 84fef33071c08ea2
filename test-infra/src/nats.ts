/**
 * Private nats-server instances (with JetStream) for tests that kill, pause or restart the
 * broker: each on a free port with its own store folder, never the shared server on 4222.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { isRunning, killHard, makeTempDir, removeTempDir, signalAndSettle, spawnTracked, stopGracefully, type TrackedProcess } from './process.js';
import { testCertificates, type TestCertificates } from './tls.js';

/** User/password or token authentication. */
export type NatsAuth = { user: string; pass: string } | { token: string };

/** Options of {@link startNats}. */
export interface StartNatsOptions {
  /** JetStream on, storing under the instance's folder (kept across restarts). Default true. */
  jetstream?: boolean;
  /** Require a user and password, or a token. `true` makes up a user and a random password. */
  auth?: NatsAuth | true;
  /** Serve TLS only, with the harness's test certificates. Default false. */
  tls?: boolean;
  /** How long to wait for the server to greet. Default 10000 ms. */
  startTimeoutMs?: number;
}

/** A running private NATS server. */
export interface NatsInstance {
  /** Port on 127.0.0.1. */
  readonly port: number;
  /** `nats://127.0.0.1:<port>` (no credentials: pass them as client options). */
  readonly url: string;
  /** `nats://user:pass@127.0.0.1:<port>` or `nats://token@...` when auth is on; else {@link url}. */
  readonly urlWithCredentials: string;
  /** The credentials the server requires, if any. */
  readonly auth: NatsAuth | undefined;
  /** The certificates, when `tls` was asked. */
  readonly certificates: TestCertificates | undefined;
  /** Current server pid. */
  readonly pid: number;
  /** Its folder (JetStream store kept across restarts). */
  readonly dir: string;
  /** True while the process runs (paused counts as running). */
  readonly running: boolean;
  /** The INFO object the server greets with (read fresh on each call). */
  info(): Promise<Record<string, unknown>>;
  /** SIGKILL. */
  kill(): Promise<void>;
  /** SIGSTOP. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Starts again on the same port and store (stopping first: SIGKILL when `hard`, else SIGTERM). */
  restart(options?: { hard?: boolean; downtimeMs?: number }): Promise<void>;
  /** Stops the server and deletes its folder. Idempotent. */
  stop(): Promise<void>;
  /** The server's output so far. */
  log(): string;
}

/** Connects and reads the server's `INFO {...}` greeting (sent in the clear, before any TLS upgrade). */
export function readNatsInfo(port: number, timeoutMs = 2000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`nats-server on 127.0.0.1:${port} sent no INFO within ${timeoutMs} ms.`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.destroy();
      const line = buf.slice(0, nl);
      if (!line.startsWith('INFO ')) reject(new Error(`Unexpected NATS greeting: ${line.slice(0, 80)}`));
      else resolve(JSON.parse(line.slice(5)) as Record<string, unknown>);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const quote = (s: string) => JSON.stringify(s);

/**
 * Starts a private nats-server (`-js` with its own store folder) on a free port, with optional
 * user/password or token auth and TLS, and waits until it greets with INFO.
 */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsInstance> {
  const port = await freePort();
  const dir = makeTempDir(`lightbus-nats-${port}`);
  const certificates = options.tls ? testCertificates() : undefined;
  const auth: NatsAuth | undefined =
    options.auth === true ? { user: `lbtest_${randomBytes(4).toString('hex')}`, pass: randomBytes(18).toString('base64url') } : options.auth;
  const lines = [`listen: "127.0.0.1:${port}"`, `server_name: lbtest_${port}`];
  if (options.jetstream ?? true) lines.push(`jetstream { store_dir: ${quote(join(dir, 'jetstream'))}, max_memory_store: 64MB, max_file_store: 256MB }`);
  if (auth) lines.push('user' in auth ? `authorization { user: ${quote(auth.user)}, password: ${quote(auth.pass)} }` : `authorization { token: ${quote(auth.token)} }`);
  if (certificates) lines.push(`tls { cert_file: ${quote(certificates.certFile)}, key_file: ${quote(certificates.keyFile)}, ca_file: ${quote(certificates.caFile)}, timeout: 2 }`);
  const configFile = join(dir, 'nats.conf');
  writeFileSync(configFile, `${lines.join('\n')}\n`, { mode: 0o600 });

  let proc: TrackedProcess | undefined;
  let stopped = false;
  let previousOutput = '';
  const launch = async () => {
    proc = spawnTracked('nats-server', ['-c', configFile]);
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    for (;;) {
      if (!isRunning(proc)) throw new Error(`nats-server on port ${port} exited at start-up:\n${proc.output()}`);
      try {
        const info = await readNatsInfo(port, 1000);
        if (!(options.jetstream ?? true) || info['jetstream'] === true || /Server is ready/.test(proc.output())) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`nats-server on port ${port} did not start within ${options.startTimeoutMs ?? 10_000} ms:\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  };
  const current = (): TrackedProcess => {
    if (!proc) throw new Error('nats-server was never started');
    return proc;
  };
  await launch();
  const url = `${certificates ? 'tls' : 'nats'}://127.0.0.1:${port}`;
  const credentials = auth ? ('user' in auth ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@` : `${encodeURIComponent(auth.token)}@`) : '';
  return {
    port,
    url,
    urlWithCredentials: credentials ? url.replace('://', `://${credentials}`) : url,
    auth,
    certificates,
    get pid() {
      return current().pid;
    },
    dir,
    get running() {
      return proc !== undefined && isRunning(proc);
    },
    info: () => readNatsInfo(port),
    kill: async () => {
      if (proc) await killHard(proc);
    },
    pause: () => {
      signalAndSettle(current().pid, 'SIGSTOP');
    },
    resume: () => {
      signalAndSettle(current().pid, 'SIGCONT');
    },
    restart: async (restartOptions = {}) => {
      if (stopped) throw new Error('This NATS instance was stopped; start a new one.');
      if (proc) {
        if (isRunning(proc)) {
          if (restartOptions.hard) await killHard(proc);
          else await stopGracefully(proc, { timeoutMs: 10_000 });
        }
        previousOutput += proc.output();
      }
      if (restartOptions.downtimeMs) await new Promise((r) => setTimeout(r, restartOptions.downtimeMs));
      await launch();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (proc) await killHard(proc);
      removeTempDir(dir);
    },
    log: () => previousOutput + (proc?.output() ?? ''),
  };
}
