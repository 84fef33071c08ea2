/**
 * Private redis-server instances for tests that kill, pause or restart the broker: each on a
 * free port with its own data folder under a temp folder, never the shared server on 6379.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { isRunning, killHard, makeTempDir, removeTempDir, signalAndSettle, spawnTracked, stopGracefully, type TrackedProcess } from './process.js';
import { respCommand, type RespTarget, type RespValue } from './resp.js';
import { testCertificates, type TestCertificates } from './tls.js';

/** An ACL user for a private Redis. */
export interface RedisAclUser {
  /** User name. */
  username: string;
  /** Password. */
  password: string;
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** Append-only file on (`appendfsync everysec`): acknowledged writes survive a SIGKILL of the server. Default true. */
  appendonly?: boolean;
  /** `appendfsync` policy when `appendonly` is on. Default `everysec`. */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Serve TLS only (no plain port), with the harness's test certificates. Default false. */
  tls?: boolean | { requireClientCert?: boolean };
  /**
   * Turn the `default` user off and create this ACL user with every permission. `true` makes
   * up a user name and a random password.
   */
  acl?: boolean | Partial<RedisAclUser>;
  /** More redis.conf lines (`maxmemory 10mb`, ...). */
  extraConfig?: readonly string[];
  /** Use this port instead of a free one (the caller made sure it is free). */
  port?: number;
  /** How long to wait for the server to answer PING. Default 10000 ms. */
  startTimeoutMs?: number;
}

/** A running private Redis. */
export interface RedisInstance {
  /** Port on 127.0.0.1. */
  readonly port: number;
  /** `redis://` (or `rediss://`) URL with the ACL credentials when there are some. */
  readonly url: string;
  /** The same URL without credentials. */
  readonly urlWithoutCredentials: string;
  /** The pid of the current server process (changes on restart). */
  readonly pid: number;
  /** Its data folder (kept across restarts). */
  readonly dir: string;
  /** The ACL user, when `acl` was asked. */
  readonly user: RedisAclUser | undefined;
  /** The certificates, when `tls` was asked. */
  readonly certificates: TestCertificates | undefined;
  /** True while the server process runs (paused counts as running). */
  readonly running: boolean;
  /** Sends one command with the harness's own small client (for checks), with credentials and TLS as needed. */
  command(args: readonly (string | number)[]): Promise<RespValue>;
  /** SIGKILL: the server dies at once; what reached the AOF survives a restart. */
  kill(): Promise<void>;
  /** SIGSTOP: the server stops answering but keeps its connections open. */
  pause(): void;
  /** SIGCONT after {@link pause}. */
  resume(): void;
  /**
   * Starts the server again on the same port with the same data folder. When it still runs it
   * is stopped first (`hard`: SIGKILL; else SIGTERM, which lets Redis write its data).
   */
  restart(options?: { hard?: boolean; downtimeMs?: number }): Promise<void>;
  /** Stops the server and deletes its data folder. Idempotent. */
  stop(): Promise<void>;
  /** The server's log so far. */
  log(): string;
}

function secret(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Starts a private redis-server on a free port (its own data folder in a temp folder), waits
 * until it answers, and returns a handle that can kill, pause, resume and restart it. The
 * process is killed when the test process exits even if `stop()` is never called.
 *
 * @example
 * ```ts
 * const redis = await startRedis({ appendonly: true });
 * afterAll(() => redis.stop());
 * await redis.kill(); await redis.restart();
 * ```
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisInstance> {
  const port = options.port ?? (await freePort());
  const dir = makeTempDir(`lightbus-redis-${port}`);
  const tlsOptions = options.tls ? (typeof options.tls === 'object' ? options.tls : {}) : undefined;
  const certificates = tlsOptions ? testCertificates() : undefined;
  const user: RedisAclUser | undefined = options.acl
    ? {
        username: (typeof options.acl === 'object' ? options.acl.username : undefined) ?? `lbtest_${randomBytes(4).toString('hex')}`,
        password: (typeof options.acl === 'object' ? options.acl.password : undefined) ?? secret(),
      }
    : undefined;
  const appendonly = options.appendonly ?? true;
  const lines = [
    'bind 127.0.0.1',
    `dir ${dir}`,
    `logfile ${join(dir, 'redis.log')}`,
    'daemonize no',
    'save ""',
    `appendonly ${appendonly ? 'yes' : 'no'}`,
    `appendfsync ${options.appendfsync ?? 'everysec'}`,
    'protected-mode no',
  ];
  if (certificates) {
    lines.push(
      'port 0',
      `tls-port ${port}`,
      `tls-cert-file ${certificates.certFile}`,
      `tls-key-file ${certificates.keyFile}`,
      `tls-ca-cert-file ${certificates.caFile}`,
      `tls-auth-clients ${tlsOptions?.requireClientCert ? 'yes' : 'no'}`,
    );
  } else lines.push(`port ${port}`);
  if (user) lines.push('user default off', `user ${user.username} on >${user.password} ~* &* +@all`);
  lines.push(...(options.extraConfig ?? []));
  const configFile = join(dir, 'redis.conf');
  writeFileSync(configFile, `${lines.join('\n')}\n`, { mode: 0o600 });

  const target: RespTarget = { port };
  if (certificates) {
    target.tls = { ca: certificates.ca };
    if (tlsOptions?.requireClientCert) {
      target.tls.cert = readFileSync(certificates.clientCertFile);
      target.tls.key = readFileSync(certificates.clientKeyFile);
    }
  }
  if (user) target.auth = { username: user.username, password: user.password };

  const scheme = certificates ? 'rediss' : 'redis';
  const credentials = user ? `${encodeURIComponent(user.username)}:${encodeURIComponent(user.password)}@` : '';
  let proc: TrackedProcess | undefined;
  let stopped = false;

  const launch = async () => {
    proc = spawnTracked('redis-server', [configFile]);
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    for (;;) {
      if (!isRunning(proc)) {
        throw new Error(`redis-server on port ${port} exited at start-up. Its log:\n${readLog()}${proc.output()}`);
      }
      try {
        const reply = await respCommand({ ...target, timeoutMs: 1000 }, ['PING']);
        if (reply === 'PONG') return;
        // LOADING while the AOF is read back: wait.
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${options.startTimeoutMs ?? 10_000} ms. Its log:\n${readLog()}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  };
  const readLog = () => {
    const file = join(dir, 'redis.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  };
  const current = (): TrackedProcess => {
    if (!proc) throw new Error('redis-server was never started');
    return proc;
  };

  await launch();

  return {
    port,
    url: `${scheme}://${credentials}127.0.0.1:${port}`,
    urlWithoutCredentials: `${scheme}://127.0.0.1:${port}`,
    get pid() {
      return current().pid;
    },
    dir,
    user,
    certificates,
    get running() {
      return proc !== undefined && isRunning(proc);
    },
    command: (args) => respCommand(target, args),
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
      if (stopped) throw new Error('This Redis instance was stopped; start a new one.');
      if (proc && isRunning(proc)) {
        if (restartOptions.hard) await killHard(proc);
        else await stopGracefully(proc, { timeoutMs: 10_000 });
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
    log: readLog,
  };
}
