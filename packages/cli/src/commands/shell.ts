/**
 * `lightbus shell`: a Node REPL with the service's `bus` in scope (top-level `await` works).
 *
 * When standard input is not a terminal (`echo '...' | lightbus shell`), the whole input runs as
 * one async script with `bus` in scope instead: the REPL would start each line without waiting
 * for the `await`s of the line before.
 *
 * @module
 */
import { text } from 'node:stream/consumers';
import { start } from 'node:repl';
import { obtainBus, type BusFlags } from '../load-bus.js';
import { closeReadOnlyBus } from './schemas.js';

type AsyncScript = (bus: unknown) => Promise<unknown>;
const AsyncFunction = (async () => undefined).constructor as new (...args: string[]) => AsyncScript;

/** Opens the REPL (or runs piped input); resolves with the exit code once it is closed. */
export async function shell(flags: BusFlags): Promise<number> {
  const { bus, modulePath } = await obtainBus(flags, { allowFallback: true });
  try {
    if (!process.stdin.isTTY) {
      const script = await text(process.stdin);
      await new AsyncFunction('bus', script)(bus);
      return 0;
    }
    const apis = bus.knownApis.map((a) => a.name);
    console.log(
      `Lightbus shell: \`bus\` is ${modulePath ? `the bus of ${modulePath}` : 'a bus made from the config'} (service ${bus.serviceName}).` +
        `${apis.length > 0 ? ` Known APIs: ${apis.join(', ')}.` : ''}\n` +
        'Try: await bus.schemas()  |  await bus.auth.checkPassword({ username: "admin", password: "secret" })  |  .exit to leave',
    );
    const server = start({ prompt: 'lightbus> ', useGlobal: false, ignoreUndefined: true });
    server.context['bus'] = bus;
    await new Promise<void>((resolvePromise) => server.on('exit', () => resolvePromise()));
    return 0;
  } finally {
    await closeReadOnlyBus(bus);
  }
}
