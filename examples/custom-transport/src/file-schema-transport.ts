// File: src/file-schema-transport.ts
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  TRANSPORT_SPECIFICATION_VERSION,
  TransportError,
  type ApiSchema,
  type SchemaTransport,
  type TransportPlugin,
} from '@lightbus/core';

/** Options of the file schema transport (config key `file`). */
export interface FileSchemaOptions {
  /** The folder every process shares (a mounted volume, a network share). */
  dir: string;
}

interface StoredSchema {
  schema: ApiSchema;
  expiresAt: number;
}

/** Shares API schemas as one JSON file per API in a folder. */
export class FileSchemaTransport implements SchemaTransport {
  readonly #dir: string;

  /** @param options where the files live */
  constructor(options: FileSchemaOptions) {
    this.#dir = options.dir;
  }

  /** Writes the API's schema with its expiry time. */
  async store(apiName: string, schema: ApiSchema, ttlSeconds: number): Promise<void> {
    const file = join(this.#dir, `${apiName}.json`);
    const stored: StoredSchema = { schema, expiresAt: Date.now() + ttlSeconds * 1000 };
    try {
      await mkdir(this.#dir, { recursive: true });
      // Write, then rename: a reader never sees half a file.
      const temporary = `${file}.${randomUUID()}.tmp`;
      await writeFile(temporary, JSON.stringify(stored));
      await rename(temporary, file);
    } catch (error) {
      throw new TransportError(
        `Cannot write the schema of ${apiName} to ${file}: ${(error as Error).message}. Check that the folder is writable.`,
        { cause: error },
      );
    }
  }

  /** Reads every schema that has not expired. */
  async load(): Promise<Record<string, ApiSchema>> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new TransportError(`Cannot list the schema folder ${this.#dir}: ${(error as Error).message}.`, { cause: error });
    }
    const schemas: Record<string, ApiSchema> = {};
    const now = Date.now();
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      try {
        const stored = JSON.parse(await readFile(join(this.#dir, name), 'utf8')) as StoredSchema;
        if (stored.expiresAt >= now) schemas[name.slice(0, -'.json'.length)] = stored.schema;
      } catch {
        // Removed or damaged since we listed it: skip it. Its owner rewrites it within 0.8 × ttl.
      }
    }
    return schemas;
  }

  /** Nothing to release. */
  async close(): Promise<void> {}
}

/** The plugin: the config key `file` builds a FileSchemaTransport for the schema role. */
export const transportPlugin: TransportPlugin<FileSchemaOptions> = {
  specificationVersion: TRANSPORT_SPECIFICATION_VERSION,
  name: 'file',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['dir'],
    properties: { dir: { type: 'string', minLength: 1, description: 'The shared folder.' } },
  },
  createSchemaTransport: (options) => new FileSchemaTransport(options),
};
