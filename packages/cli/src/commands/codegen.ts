/**
 * `lightbus codegen`: typed API definitions from the schemas on the bus or from a dump.
 *
 * @module
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ApiSchema } from '@lightbus/core';
import { generateDeclarationFiles, generateDeclarations, selectApis } from '../codegen.js';
import { CliError } from '../errors.js';
import { obtainBus, type BusFlags } from '../load-bus.js';
import { isDirectoryTarget, writeFilesInto, writeStdout, writeTextFile } from '../output.js';
import { closeReadOnlyBus, collectSchemas } from './schemas.js';

/** Flags of `lightbus codegen`. */
export interface CodegenFlags extends BusFlags {
  /** A schema dump: a file from `dumpschema` (or one `{api}.json`), or a folder of them. */
  schema?: string;
  /** A `.ts` file, or a folder (one module per API plus index.ts). Default: stdout. */
  out?: string;
  /** Only these APIs (comma list). */
  api?: string;
  /** Include `internal.*` APIs. */
  includeInternal?: boolean;
  /** Module to import the builders from. */
  coreModule?: string;
}

function isApiSchema(value: unknown): value is ApiSchema {
  return typeof value === 'object' && value !== null && ('events' in value || 'rpcs' in value) && !Array.isArray(value);
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (error) {
    throw new CliError(`Cannot read the schema file ${path}: ${(error as Error).message}. Give a file written by \`lightbus dumpschema\`.`, { cause: error });
  }
}

/**
 * Reads schemas from a dump: `{ api: schema }` as dumpschema writes it, a single API's schema
 * (named after the file), or a folder of such files.
 */
export function readSchemaDump(path: string): Record<string, ApiSchema> {
  const full = resolve(path);
  let stat;
  try {
    stat = statSync(full);
  } catch {
    throw new CliError(`The schema file ${full} does not exist. Write one with \`lightbus dumpschema --out ${path}\`.`);
  }
  const files = stat.isDirectory()
    ? readdirSync(full)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => join(full, f))
    : [full];
  const out: Record<string, ApiSchema> = {};
  for (const file of files) {
    const value = readJson(file);
    if (isApiSchema(value)) {
      out[basename(file, '.json')] = value;
    } else if (typeof value === 'object' && value !== null && Object.values(value).every(isApiSchema)) {
      Object.assign(out, value);
    } else {
      throw new CliError(`${file} is not a schema dump: expected { "apiName": { "events": {...}, "rpcs": {...} } }.`);
    }
  }
  return out;
}

/** Generates the declarations. Resolves with the exit code. */
export async function codegen(flags: CodegenFlags): Promise<number> {
  let schemas: Record<string, ApiSchema>;
  let source: string;
  if (flags.schema !== undefined) {
    schemas = readSchemaDump(flags.schema);
    source = basename(flags.schema);
  } else {
    const { bus } = await obtainBus(flags, { allowFallback: true });
    try {
      schemas = await collectSchemas(bus);
    } finally {
      await closeReadOnlyBus(bus);
    }
    source = 'the schemas on the bus';
  }
  const options = {
    ...(flags.api ? { apis: flags.api.split(',').map((s) => s.trim()).filter((s) => s !== '') } : {}),
    includeInternal: flags.includeInternal ?? false,
    ...(flags.coreModule ? { coreModule: flags.coreModule } : {}),
    source,
  };
  const missing = (options.apis ?? []).filter((name) => !(name in schemas));
  if (missing.length > 0) {
    throw new CliError(`No schema for API ${missing.join(', ')} in ${source}. Known APIs: ${Object.keys(schemas).join(', ') || '(none)'}.`);
  }
  const selected = selectApis(schemas, options);
  if (selected.length === 0) {
    throw new CliError(
      `No API schemas found in ${source}${Object.keys(schemas).length > 0 ? ' (only internal ones; add --include-internal)' : ''}. Start the service that owns the API (its worker publishes the schema), or pass --schema FILE.`,
    );
  }
  if (flags.out !== undefined && isDirectoryTarget(flags.out)) {
    const written = writeFilesInto(flags.out, generateDeclarationFiles(schemas, options));
    console.error(`Wrote ${written.length} file(s) for ${selected.length} API(s) to ${flags.out}`);
  } else if (flags.out !== undefined) {
    const path = writeTextFile(flags.out, generateDeclarations(schemas, options));
    console.error(`Wrote definitions of ${selected.join(', ')} to ${path}`);
  } else {
    await writeStdout(generateDeclarations(schemas, options));
  }
  return 0;
}
