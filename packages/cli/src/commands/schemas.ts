/**
 * `lightbus dumpschema` and `lightbus dumpconfigschema`.
 *
 * @module
 */
import { configJsonSchema, type ApiSchema } from '@lightbus/core';
import { CliError } from '../errors.js';
import { obtainBus, type AnyBus, type BusFlags } from '../load-bus.js';
import { isDirectoryTarget, sortKeys, writeFilesInto, writeStdout, writeTextFile } from '../output.js';
import { installedTransportPlugins } from '../plugins.js';

/** Closes a bus used for one read, without waiting long. */
export async function closeReadOnlyBus(bus: AnyBus): Promise<void> {
  await bus.close({ timeoutMs: 1000 }).catch(() => undefined);
}

/** Every API schema known: those defined in the bus module, and those published on the bus. */
export async function collectSchemas(bus: AnyBus): Promise<Record<string, ApiSchema>> {
  try {
    return sortKeys(await bus.schemas());
  } catch (error) {
    throw new CliError(`Cannot load the schemas from the bus: ${(error as Error).message}`, { cause: error });
  }
}

/** Flags of `lightbus dumpschema`. */
export interface DumpSchemaFlags extends BusFlags {
  /** A file (one document), or a folder (one `{api}.json` per API). Default: stdout. */
  out?: string;
}

/** Writes the schemas of all known APIs. Resolves with the exit code. */
export async function dumpSchema(flags: DumpSchemaFlags): Promise<number> {
  const { bus } = await obtainBus(flags, { allowFallback: true });
  let schemas: Record<string, ApiSchema>;
  try {
    schemas = await collectSchemas(bus);
  } finally {
    await closeReadOnlyBus(bus);
  }
  if (flags.out === undefined) {
    await writeStdout(JSON.stringify(schemas, null, 2));
  } else if (isDirectoryTarget(flags.out)) {
    const files = new Map(Object.entries(schemas).map(([name, schema]) => [`${name}.json`, JSON.stringify(schema, null, 2)]));
    const written = writeFilesInto(flags.out, files);
    console.error(`Wrote ${written.length} schema file(s) to ${flags.out}`);
  } else {
    const path = writeTextFile(flags.out, JSON.stringify(schemas, null, 2));
    console.error(`Wrote the schemas of ${Object.keys(schemas).length} API(s) to ${path}`);
  }
  return 0;
}

/** Writes the JSON Schema of the configuration, with the options of installed transports. */
export async function dumpConfigSchema(flags: { out?: string }): Promise<number> {
  const plugins = await installedTransportPlugins(process.cwd());
  const schema = configJsonSchema(plugins);
  const text = JSON.stringify(schema, null, 2);
  if (flags.out === undefined) await writeStdout(text);
  else {
    const path = writeTextFile(flags.out, text);
    console.error(`Wrote the configuration schema (transports: ${plugins.map((p) => p.name).join(', ')}) to ${path}`);
  }
  return 0;
}
