/**
 * A private RabbitMQ vhost and user on the shared RabbitMQ, made with rabbitmqctl under unique
 * names and deleted afterwards. That disturbs nobody else on the server, unlike restarting it.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A vhost with a user allowed everything in it. */
export interface RabbitVhost {
  /** The vhost name. */
  readonly vhost: string;
  /** The user name. */
  readonly username: string;
  /** The user's password. */
  readonly password: string;
  /** `amqp://user:password@127.0.0.1:5672/<vhost>`. */
  readonly url: string;
  /** The same URL without the credentials. */
  readonly urlWithoutCredentials: string;
  /** Deletes the user and the vhost (with everything in it). Idempotent. */
  delete(): Promise<void>;
}

async function rabbitmqctl(args: readonly string[], secrets: readonly string[] = []): Promise<string> {
  try {
    const { stdout } = await run('rabbitmqctl', ['--quiet', ...args], { timeout: 60_000 });
    return stdout;
  } catch (error) {
    let text = (error as { stderr?: string }).stderr?.trim() || (error as Error).message.split('\n')[0] || '';
    // Never echo a secret: add_user carries a password, and rabbitmqctl repeats its arguments.
    for (const secret of secrets) text = text.split(secret).join('[redacted]');
    throw new Error(`rabbitmqctl ${args[0]} failed: ${text}. Is RabbitMQ running (bash test-infra/ensure-servers.sh)?`);
  }
}

/**
 * Creates a vhost and a user (random password) with full permissions on it, on the shared
 * RabbitMQ (`rabbitmqctl add_vhost / add_user / set_permissions`).
 */
export async function createRabbitVhost(options: { host?: string; port?: number } = {}): Promise<RabbitVhost> {
  const id = randomBytes(4).toString('hex');
  const vhost = `lbtest_${id}`;
  const username = `lbtest_${id}`;
  // Letters and digits only: rabbitmqctl would read a password starting with "-" as an option.
  const password = `p${randomBytes(18).toString('hex')}`;
  await rabbitmqctl(['add_vhost', vhost]);
  let deleted = false;
  const remove = async () => {
    if (deleted) return;
    deleted = true;
    await rabbitmqctl(['delete_user', username]).catch(() => undefined);
    await rabbitmqctl(['delete_vhost', vhost]).catch(() => undefined);
  };
  try {
    await rabbitmqctl(['add_user', username, password], [password]);
    await rabbitmqctl(['set_permissions', '-p', vhost, username, '.*', '.*', '.*']);
  } catch (error) {
    await remove();
    throw error;
  }
  const hostPort = `${options.host ?? '127.0.0.1'}:${options.port ?? 5672}`;
  return {
    vhost,
    username,
    password,
    url: `amqp://${username}:${password}@${hostPort}/${encodeURIComponent(vhost)}`,
    urlWithoutCredentials: `amqp://${hostPort}/${encodeURIComponent(vhost)}`,
    delete: remove,
  };
}

/** The vhosts on the shared RabbitMQ (to check that a test cleaned up). */
export async function listRabbitVhosts(): Promise<string[]> {
  const out = await rabbitmqctl(['list_vhosts', 'name']);
  return out.split('\n').map((l) => l.trim()).filter((l) => l && l !== 'name');
}
