/**
 * `lightbus shell`: a Node REPL with the service's `bus` in scope (top-level `await` works).
 *
 * @module
 */
import { start } from 'node:repl';
import { obtainBus, type BusFlags } from '../load-bus.js';
import { closeReadOnlyBus } from './schemas.js';

/** Opens the REPL; resolves with the exit code once it is closed (`.exit`, Ctrl+D). */
export async function shell(flags: BusFlags): Promise<number> {
  const { bus, modulePath } = await obtainBus(flags, { allowFallback: true });
  const apis = bus.knownApis.map((a) => a.name);
  if (process.stdin.isTTY) {
    console.log(
      `Lightbus shell: \`bus\` is ${modulePath ? `the bus of ${modulePath}` : 'a bus made from the config'} (service ${bus.serviceName}).` +
        `${apis.length > 0 ? ` Known APIs: ${apis.join(', ')}.` : ''}\n` +
        'Try: await bus.schemas()  |  await bus.auth.checkPassword({ username: "admin", password: "secret" })  |  .exit to leave',
    );
  }
  const server = start({ prompt: 'lightbus> ', useGlobal: false, ignoreUndefined: true, terminal: process.stdin.isTTY });
  server.context['bus'] = bus;
  await new Promise<void>((resolvePromise) => server.on('exit', () => resolvePromise()));
  await closeReadOnlyBus(bus);
  return 0;
}
