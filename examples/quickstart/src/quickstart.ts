// The whole quick start in one process: both services' workers, the RPC and the event.
// With no broker configured everything runs on the in-memory transports; point
// LIGHTBUS_CONFIG at lightbus.redis.yaml to run the same code over Redis.
import { bus as authBus } from './auth-service/bus.js';
import { bus as anotherBus, output } from './another-service/bus.js';

/** Runs the quick start and resolves once the event was heard. Returns what was printed. */
export async function runQuickstart(log: (line: string) => void = console.log): Promise<{ valid: boolean; heard: string[] }> {
  const transport = Object.keys(authBus.apiConfig('auth').transports.rpc)[0];
  log(`Transports: ${transport}${transport === 'memory' ? ' (set LIGHTBUS_CONFIG=lightbus.redis.yaml to use Redis)' : ''}`);
  const heard: string[] = [];
  let resolveHeard!: () => void;
  const heardOnce = new Promise<void>((resolve) => (resolveHeard = resolve));
  // another_service's listener prints through `output`: capture its lines.
  output.log = (line) => {
    log(line);
    const match = /^ {4}Username: (.*)$/.exec(line);
    if (match) {
      heard.push(match[1]!);
      resolveHeard();
    }
  };
  // Two `lightbus run` workers: auth_service serves its RPC; another_service listens.
  await authBus.start();
  await anotherBus.start();
  try {
    const valid = await anotherBus.auth.checkPassword({ username: 'admin', password: 'secret' });
    log(valid ? 'Password valid!' : 'Oops, bad username or password');
    await authBus.auth.userRegistered.fire({ username: 'admin', email: 'admin@example.com' });
    log('Fired auth.user_registered');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      heardOnce,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('user_registered was not heard within 10 s')), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
    return { valid, heard };
  } finally {
    await anotherBus.close();
    await authBus.close();
  }
}
