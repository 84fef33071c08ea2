/**
 * Finding and loading a service's bus module (`bus.ts` / `bus.js`), TypeScript included, with
 * no build step (tsx). The environment variables core reads when a bus is created are set from
 * the command's flags first, since the module creates its bus as it is imported.
 *
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { extname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createBus, LightbusError, type BusClient, type TransportPlugin } from '@lightbus/core';
import { CliError } from './errors.js';
import { installedTransportPlugins } from './plugins.js';

/** The bus object as the CLI uses it (from any installed copy of `@lightbus/core`). */
export type AnyBus = BusClient;

/** Module file names tried, in order, when neither `--bus` nor `LIGHTBUS_MODULE` is given. */
export const DEFAULT_MODULE_NAMES = ['bus.ts', 'bus.js'] as const;

/** Log levels `--log-level` accepts. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/** Flags shared by the commands that load a bus. */
export interface BusFlags {
  /** `--bus PATH`: the bus module (a file, or a folder holding bus.ts / bus.js). */
  bus?: string;
  /** `--config FILE`: a YAML or JSON config file (sets LIGHTBUS_CONFIG). */
  config?: string;
  /** `--service-name` (sets LIGHTBUS_SERVICE_NAME). */
  serviceName?: string;
  /** `--process-name` (sets LIGHTBUS_PROCESS_NAME). */
  processName?: string;
  /** `--log-level` (sets LIGHTBUS_LOG_LEVEL). */
  logLevel?: string;
  /** `--json-logs` (sets LIGHTBUS_LOG_FORMAT=json). */
  jsonLogs?: boolean;
}

/**
 * Sets the `LIGHTBUS_*` environment variables core reads at bus creation from the flags.
 * Must run before the bus module is imported. Flags win over variables already set.
 */
export function applyEnvironment(flags: BusFlags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): void {
  if (flags.config !== undefined) env['LIGHTBUS_CONFIG'] = isAbsolute(flags.config) ? flags.config : resolve(cwd, flags.config);
  if (flags.serviceName !== undefined) env['LIGHTBUS_SERVICE_NAME'] = flags.serviceName;
  if (flags.processName !== undefined) env['LIGHTBUS_PROCESS_NAME'] = flags.processName;
  if (flags.logLevel !== undefined) env['LIGHTBUS_LOG_LEVEL'] = flags.logLevel;
  if (flags.jsonLogs) env['LIGHTBUS_LOG_FORMAT'] = 'json';
}

/** Where the bus module was looked for. */
export interface ModuleCandidates {
  /** Absolute paths, in the order tried. */
  paths: string[];
  /** What named them: the `--bus` flag, `LIGHTBUS_MODULE`, or the defaults in the current folder. */
  source: '--bus' | 'LIGHTBUS_MODULE' | 'default';
}

/** The paths to try for the bus module. A folder stands for bus.ts and bus.js inside it. */
export function moduleCandidates(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ModuleCandidates {
  const named = flag ?? (env['LIGHTBUS_MODULE'] || undefined);
  const source = flag !== undefined ? '--bus' : named !== undefined ? 'LIGHTBUS_MODULE' : 'default';
  const base = resolve(cwd, named ?? '.');
  if (named === undefined || isDirectory(base)) {
    return { paths: DEFAULT_MODULE_NAMES.map((name) => resolve(base, name)), source };
  }
  return { paths: [base], source };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The bus module's path. Throws a {@link CliError} naming every path tried when none exists.
 */
export function findBusModule(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const { paths, source } = moduleCandidates(flag, env, cwd);
  const found = paths.find((p) => existsSync(p) && !isDirectory(p));
  if (found) return found;
  const via = source === '--bus' ? ' (from --bus)' : source === 'LIGHTBUS_MODULE' ? ' (from LIGHTBUS_MODULE)' : ` in ${cwd}`;
  throw new CliError(
    `No bus module found${via}. Tried: ${paths.join(', ')}. Create a bus.ts that does \`export const bus = createBus({...})\`, ` +
      'run the command from the service folder, or name the module with --bus PATH or the LIGHTBUS_MODULE environment variable.',
    { exitCode: 1 },
  );
}

/** True when `value` looks like a bus created by `createBus()` of any installed `@lightbus/core`. */
export function isBus(value: unknown): value is AnyBus {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['serviceName'] === 'string' &&
    typeof v['describe'] === 'function' &&
    typeof v['start'] === 'function' &&
    typeof v['close'] === 'function' &&
    typeof v['schemas'] === 'function'
  );
}

/** The bus a loaded module exports: `export const bus`, `export default bus`, or CommonJS `module.exports = { bus }`. */
export function busFromModule(mod: Record<string, unknown>, path: string): AnyBus {
  const fallback = mod['default'] as Record<string, unknown> | undefined;
  const candidates: unknown[] = [mod['bus'], fallback, fallback !== null && typeof fallback === 'object' ? fallback['bus'] : undefined];
  const found = candidates.find(isBus);
  if (found) return found;
  const names = Object.keys(mod).filter((k) => k !== '__esModule');
  throw new CliError(
    `The module ${path} does not export a bus. It exports: ${names.length > 0 ? names.join(', ') : '(nothing)'}. ` +
      'Add `export const bus = createBus({ apis: [...] })` (or make the bus the default export).',
  );
}

let tsxRegistered: Promise<void> | undefined;

/** Makes `import()` of .ts/.mts/.cts files work in this process (tsx), once. */
export function registerTypeScript(): Promise<void> {
  tsxRegistered ??= import('tsx/esm/api').then(({ register }) => {
    register();
  });
  return tsxRegistered;
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);

/**
 * Imports the bus module at `path` (TypeScript through tsx) and returns its bus. An error the
 * module throws while loading (a bad config found by `createBus`, a syntax error) is rethrown:
 * Lightbus errors as they are, others wrapped in a {@link CliError} naming the module.
 */
export async function importBus(path: string): Promise<AnyBus> {
  if (TS_EXTENSIONS.has(extname(path).toLowerCase())) await registerTypeScript();
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    if (LightbusError.isInstance(error)) throw error;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new CliError(`Loading the bus module ${path} failed: ${text}. Fix the module (run with --log-level debug to see the stack trace).`, {
      cause: error,
    });
  }
  return busFromModule(mod, path);
}

/** Options of {@link obtainBus}. */
export interface ObtainBusOptions {
  /**
   * When no module is found and none was named explicitly, create a plain bus from the config
   * (for commands that only read the bus: dumpschema, inspect, shell, codegen).
   */
  allowFallback?: boolean;
  /** Working folder. Default `process.cwd()`. */
  cwd?: string;
}

/** What {@link obtainBus} returns. */
export interface ObtainedBus {
  /** The bus. */
  bus: AnyBus;
  /** The module it came from; undefined for a plain bus created from the config. */
  modulePath: string | undefined;
}

/** Sets the environment from the flags, then loads the bus module (or, if allowed, makes a plain bus). */
export async function obtainBus(flags: BusFlags, options: ObtainBusOptions = {}): Promise<ObtainedBus> {
  const cwd = options.cwd ?? process.cwd();
  applyEnvironment(flags, process.env, cwd);
  const candidates = moduleCandidates(flags.bus, process.env, cwd);
  const exists = candidates.paths.some((p) => existsSync(p) && !isDirectory(p));
  if (!exists && options.allowFallback && candidates.source === 'default') {
    // No module: a plain bus from the config, with the transport plugins installed here.
    const transports = (await installedTransportPlugins(cwd)).filter((p) => p.name !== 'memory') as TransportPlugin<never>[];
    return { bus: createBus({ transports }) as unknown as AnyBus, modulePath: undefined };
  }
  const path = findBusModule(flags.bus, process.env, cwd);
  return { bus: await importBus(path), modulePath: path };
}
