/**
 * The `lightbus` command line (commander): `run`, `dumpschema`, `dumpconfigschema`, `inspect`,
 * `shell`, `codegen`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { LightbusError } from '@lightbus/core';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { codegen, type CodegenFlags } from './commands/codegen.js';
import { inspect, type InspectFlags } from './commands/inspect.js';
import { runWorker, type RunFlags } from './commands/run.js';
import { dumpConfigSchema, dumpSchema, type DumpSchemaFlags } from './commands/schemas.js';
import { shell } from './commands/shell.js';
import { formatFatal } from './errors.js';
import { LOG_LEVELS, type BusFlags } from './load-bus.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function integer(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer of at least ${min}.`);
    return n;
  };
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number.`);
    return n;
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Adds the flags every bus-loading command shares. */
function withBusOptions(command: Command): Command {
  return command
    .option('-b, --bus <path>', 'the bus module (a file, or a folder holding bus.ts / bus.js); default: $LIGHTBUS_MODULE, else ./bus.ts then ./bus.js')
    .option('-c, --config <file>', 'YAML or JSON configuration file (sets LIGHTBUS_CONFIG)')
    .option('--service-name <name>', 'service name; listener groups are {service}-{listener} (sets LIGHTBUS_SERVICE_NAME)')
    .option('--process-name <name>', 'this process\'s name, unique within the service (sets LIGHTBUS_PROCESS_NAME)')
    .addOption(new Option('--log-level <level>', 'lowest log level printed (sets LIGHTBUS_LOG_LEVEL); debug also prints stack traces').choices(LOG_LEVELS))
    .option('--json-logs', 'log one JSON object per line (sets LIGHTBUS_LOG_FORMAT=json)');
}

/** Runs a command's action and records its exit code. */
function action<F>(prefix: string, fn: (flags: F) => Promise<number>) {
  return async (flags: F): Promise<void> => {
    try {
      process.exitCode = await fn(flags);
    } catch (error) {
      const debug = ((flags as BusFlags).logLevel ?? process.env['LIGHTBUS_LOG_LEVEL']) === 'debug';
      const text = formatFatal(error, { prefix, debug });
      if ((flags as BusFlags).jsonLogs || process.env['LIGHTBUS_LOG_FORMAT'] === 'json') {
        const code = LightbusError.isInstance(error) ? error.code : undefined;
        console.error(JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: text, ...(code ? { code } : {}) }));
      } else console.error(text);
      process.exitCode = (error as { exitCode?: number }).exitCode ?? 1;
    }
  };
}

/** Builds the `lightbus` program. */
export function createProgram(): Command {
  const program = new Command('lightbus')
    .description('Lightbus: RPCs and events between backend services. Run a service\'s worker, inspect the bus, generate typed APIs.')
    .version(version(), '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  program.addHelpText(
    'after',
    `
Examples:
  $ lightbus run                        start the worker of ./bus.ts (or ./bus.js)
  $ lightbus run --bus src/bus.ts --config lightbus.yaml
  $ lightbus dumpschema --out schema.json
  $ lightbus inspect --api auth --event 'user_*' --limit 5
  $ lightbus codegen --out src/generated/apis.ts
Environment: LIGHTBUS_MODULE, LIGHTBUS_CONFIG, LIGHTBUS_SERVICE_NAME, LIGHTBUS_PROCESS_NAME, LIGHTBUS_LOG_LEVEL, LIGHTBUS_LOG_FORMAT=json`,
  );

  withBusOptions(program.command('run').description('Start the worker: serve the RPCs of registered APIs, run event listeners and scheduled tasks, until SIGINT/SIGTERM.'))
    .addOption(new Option('--only <parts>', 'run only these parts: comma list of rpcs,events,tasks').conflicts('skip'))
    .addOption(new Option('--skip <parts>', 'run all parts but these: comma list of rpcs,events,tasks'))
    .option('--shutdown-timeout <ms>', 'on SIGINT/SIGTERM, milliseconds in-flight handlers get to finish (unfinished events are redelivered later)', integer('--shutdown-timeout', 0), 10_000)
    .option('--start-timeout <seconds>', 'give up when the worker has not started after this long (an unreachable broker)', positiveNumber('--start-timeout'), 30)
    .option('--health-port <port>', 'serve GET /healthz (alive) and /readyz (200 once started, 503 while starting or stopping) on this port; 0 picks one', integer('--health-port', 0))
    .option('--health-host <host>', 'interface of the health endpoint', '0.0.0.0')
    .addHelpText(
      'after',
      `
The bus module creates the bus and registers what the worker runs:
  export const bus = createBus({ apis: [authApi] });
  bus.registerApi(authApi, { checkPassword: ({ username, password }) => username === 'admin' && password === 'secret' });
  bus.onStart((bus) => bus.auth.userRegistered.listen(sendWelcome, { listenerName: 'welcome_email' }));
  bus.every(60, refreshCache);

A first SIGINT/SIGTERM stops gracefully and exits 0; a second exits at once (130 / 143).
It exits 1 with one paragraph saying why when it cannot start: no bus module (the paths tried are
named), a module without a bus export, a bad config (each bad key is named), an unreachable broker.

Examples:
  $ cd auth_service && lightbus run
  $ lightbus run --bus ./src/bus.ts --config ./lightbus.yaml --service-name auth_service
  $ lightbus run --only rpcs                 serve RPCs only (no listeners, no tasks)
  $ lightbus run --skip tasks --health-port 8080 --json-logs
  $ LIGHTBUS_MODULE=dist/bus.js lightbus run --shutdown-timeout 30000`,
    )
    .action(action<RunFlags>('lightbus run: cannot start', runWorker));

  withBusOptions(program.command('dumpschema').description('Write the JSON Schema of every API known: those the bus module defines and those published on the bus.'))
    .option('-o, --out <file|dir>', 'a file for one document { apiName: schema }, or a folder (existing, or ending in /) for one {api}.json per API; default: stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ lightbus dumpschema                      print { "auth": { "events": ..., "rpcs": ... }, ... }
  $ lightbus dumpschema --out schema.json
  $ lightbus dumpschema --out schemas/       one file per API: schemas/auth.json ...`,
    )
    .action(action<DumpSchemaFlags>('lightbus dumpschema: failed', dumpSchema));

  program
    .command('dumpconfigschema')
    .description('Write the JSON Schema of the configuration file, with the options of the installed transports (@lightbus/redis, @lightbus/nats, @lightbus/amqp).')
    .option('-o, --out <file>', 'write to this file; default: stdout')
    .addHelpText(
      'after',
      `
Point your editor at it to check lightbus.yaml as you type (YAML language server):
  # yaml-language-server: $schema=./lightbus-config.schema.json

Examples:
  $ lightbus dumpconfigschema > lightbus-config.schema.json
  $ lightbus dumpconfigschema --out lightbus-config.schema.json`,
    )
    .action(action<{ out?: string }>('lightbus dumpconfigschema: failed', dumpConfigSchema));

  withBusOptions(program.command('inspect').description('Show the events on the bus, newest first, from the event transport\'s history.'))
    .option('-a, --api <names>', 'API name(s), comma separated; required unless the bus module registers exactly one API')
    .option('-e, --event <name>', 'event name; * and ? wildcards (user_*)')
    .option('--id <id>', 'only the event with this message id')
    .option('-f, --field <key=value>', 'only events whose parameter equals value (dotted keys, * wildcards); repeatable', collect)
    .option('--since <time>', 'only events at or after this time: an ISO date, or a duration back from now (90s, 10m, 2h, 1d)')
    .option('--until <time>', 'only events at or before this time (same forms as --since)')
    .option('-n, --limit <n>', 'at most this many events', integer('--limit', 1), 20)
    .option('--follow', 'keep printing new events until Ctrl+C (polls the history: read-only, creates no listener group)')
    .option('--interval <ms>', 'poll interval of --follow', integer('--interval', 50), 1000)
    .addOption(new Option('--format <format>', 'pretty text, or one JSON object per line').choices(['pretty', 'json']).default('pretty'))
    .addHelpText(
      'after',
      `
Examples:
  $ lightbus inspect --api auth
  $ lightbus inspect --api auth --event 'user_*' --field username=admin --limit 5
  $ lightbus inspect --api auth --id 6c0f2a4e-...
  $ lightbus inspect --api auth --since 2h --until 1h
  $ lightbus inspect --api auth,billing --follow --format json | jq .parameters`,
    )
    .action(action<InspectFlags>('lightbus inspect: failed', inspect));

  withBusOptions(program.command('shell').description('Open a Node REPL with the service\'s `bus` in scope; top-level await works.'))
    .addHelpText(
      'after',
      `
Examples:
  $ lightbus shell
  lightbus> await bus.auth.checkPassword({ username: 'admin', password: 'secret' })
  true
  lightbus> Object.keys(await bus.schemas())
  $ echo 'console.log(await bus.schemas())' | lightbus shell    piped input runs as one async script`,
    )
    .action(action<BusFlags>('lightbus shell: failed', shell));

  withBusOptions(
    program
      .command('codegen')
      .description('Generate TypeScript API definitions (defineApi with Type builders) from the schemas on the bus or a schema dump, for typed calls to APIs this service does not own.'),
  )
    .option('-s, --schema <file|dir>', 'read schemas from a dump (lightbus dumpschema output, or a folder of {api}.json) instead of the bus')
    .option('-o, --out <file|dir>', 'a .ts file, or a folder (existing, or ending in /) for one module per API plus index.ts; default: stdout')
    .option('-a, --api <names>', 'only these APIs, comma separated')
    .option('--include-internal', 'include internal.* APIs (Python workers publish internal.state and internal.metrics)')
    .option('--core-module <specifier>', 'module the builders are imported from', '@lightbus/core')
    .addHelpText(
      'after',
      `
Then, in the calling service:
  import { authApi } from './generated/apis.js';
  const bus = createBus({ apis: [authApi] });
  const ok = await bus.auth.checkPassword({ username: 'admin', password: 'secret' }); // typed

Examples:
  $ lightbus codegen --out src/generated/apis.ts          from the schemas on the bus
  $ lightbus codegen --schema schema.json --api auth --out src/generated/auth.ts
  $ lightbus codegen --out src/generated/                 one module per API`,
    )
    .action(action<CodegenFlags>('lightbus codegen: failed', codegen));

  return program;
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    // Help and version exit 0; usage errors (unknown option, missing value) exit 2.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    console.error(formatFatal(error, { prefix: 'lightbus' }));
    return 1;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
