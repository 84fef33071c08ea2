/**
 * `@lightbus/cli`: the `lightbus` command, and its parts for programmatic use.
 *
 * - {@link createProgram} / {@link main}: the command line.
 * - {@link generateDeclarations}, {@link generateDeclarationFiles}, {@link schemaToTypeBox}:
 *   TypeScript API definitions from JSON Schemas (`lightbus codegen`).
 * - {@link obtainBus}, {@link findBusModule}, {@link applyEnvironment}: loading a bus module the
 *   way `lightbus run` does.
 *
 * @packageDocumentation
 */
export { createProgram, main } from './cli.js';
export {
  apiIdentifier,
  generateApi,
  generateDeclarationFiles,
  generateDeclarations,
  schemaToTypeBox,
  selectApis,
  type CodegenOptions,
} from './codegen.js';
export { CliError, formatFatal, type FormatFatalOptions } from './errors.js';
export { startHealthServer, type HealthServer, type HealthState } from './health.js';
export {
  applyEnvironment,
  busFromModule,
  DEFAULT_MODULE_NAMES,
  findBusModule,
  importBus,
  isBus,
  LOG_LEVELS,
  moduleCandidates,
  obtainBus,
  registerTypeScript,
  type AnyBus,
  type BusFlags,
  type ModuleCandidates,
  type ObtainBusOptions,
  type ObtainedBus,
} from './load-bus.js';
export { installedTransportPlugins, KNOWN_TRANSPORT_PACKAGES } from './plugins.js';
export { formatSummary, type WorkerParts } from './summary.js';
export { runWorker, workerParts, WORKER_PARTS, type RunFlags } from './commands/run.js';
export { readSchemaDump, codegen, type CodegenFlags } from './commands/codegen.js';
export { eventFilter, formatEvent, globToRegExp, parseFieldFilter, parseTime, inspect, type FieldFilter, type InspectFlags } from './commands/inspect.js';
export { collectSchemas, dumpConfigSchema, dumpSchema, type DumpSchemaFlags } from './commands/schemas.js';
export { shell } from './commands/shell.js';
