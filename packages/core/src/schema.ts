/**
 * API schemas: the JSON Schema document each API publishes on the bus (exactly the shape Python
 * Lightbus stores), and validation of messages against it with Ajv (draft-07, the rules Python's
 * `jsonschema` applies: formats are annotations, not checked).
 *
 * @module
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ValidationError, type ValidationIssue } from './errors.js';

/** A JSON Schema object. */
export type JsonSchema = Record<string, unknown>;

/** One event's schema. */
export interface EventSchema {
  /** JSON Schema of the parameters object. */
  parameters: JsonSchema;
}

/** One RPC's schema. */
export interface RpcSchema {
  /** JSON Schema of the keyword arguments object. */
  parameters: JsonSchema;
  /** JSON Schema of the result. */
  response: JsonSchema;
}

/** The schema document of one API, as stored on the bus under `schema:{api}`. */
export interface ApiSchema {
  /** Events by wire name. */
  events: Record<string, EventSchema>;
  /** RPCs by wire name. */
  rpcs: Record<string, RpcSchema>;
}

/** The draft the schemas declare. */
export const JSON_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

/** Strips TypeBox's symbol keys and anything JSON cannot hold. */
export function plainSchema(schema: unknown): JsonSchema {
  return JSON.parse(JSON.stringify(schema ?? {})) as JsonSchema;
}

/**
 * Builds a parameters schema exactly as Python Lightbus does: draft-07, `type: object`,
 * `additionalProperties: false`, `required` (left out when empty), and a title.
 * @param properties parameter name → JSON Schema
 * @param required the names callers must give
 * @param title e.g. `RPC auth.check_password() parameters`
 */
export function parametersSchema(properties: Record<string, unknown>, required: readonly string[], title: string): JsonSchema {
  const schema: JsonSchema = {
    $schema: JSON_SCHEMA_DRAFT,
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, plainSchema(v)])),
  };
  if (required.length > 0) schema['required'] = [...required];
  schema['title'] = title;
  return schema;
}

/** Builds a response schema: the result's schema with `$schema` and a title. */
export function responseSchema(schema: unknown, title: string): JsonSchema {
  return { $schema: JSON_SCHEMA_DRAFT, ...plainSchema(schema), title };
}

/** Titles, as Python writes them. */
export const titles = {
  rpcParameters: (api: string, rpc: string) => `RPC ${api}.${rpc}() parameters`,
  rpcResponse: (api: string, rpc: string) => `RPC ${api}.${rpc}() response`,
  eventParameters: (api: string, event: string) => `Event ${api}.${event} parameters`,
};

/** What a validator checks, used in messages: e.g. `parameters of RPC auth.check_password()`. */
export type ValidationSubject = string;

/**
 * Compiles and caches validators. One per bus; schemas are compiled on first use, and the Ajv
 * instance is set up on the first validation (a worker at rest has validated nothing).
 */
export class SchemaValidator {
  #ajvInstance: Ajv | undefined;
  readonly #cache = new WeakMap<object, ValidateFunction>();

  get #ajv(): Ajv {
    if (this.#ajvInstance === undefined) {
      this.#ajvInstance = new Ajv({
        allErrors: true,
        strict: false,
        // JSON has no Infinity or NaN: 1e400 parses to Infinity and must not pass as an integer.
        strictNumbers: true,
        validateFormats: false,
        useDefaults: true,
        validateSchema: false,
      });
    }
    return this.#ajvInstance;
  }

  /**
   * Validates `value` against `schema` in place (defaults are filled in). Throws a
   * {@link ValidationError} naming `subject` and the JSON path of each problem.
   */
  validate(schema: JsonSchema, value: unknown, subject: ValidationSubject, details: Record<string, unknown> = {}): void {
    let fn = this.#cache.get(schema);
    if (!fn) {
      try {
        fn = this.#ajv.compile(stripSchemaId(schema));
      } catch (error) {
        throw new ValidationError(
          `The schema for ${subject} cannot be compiled: ${(error as Error).message}. Fix the API definition (or the schema published on the bus).`,
          [],
          { cause: error, details },
        );
      }
      this.#cache.set(schema, fn);
    }
    if (fn(value)) return;
    const issues = (fn.errors ?? []).map(toIssue);
    const list = issues.map((i) => `${i.path} ${i.message}`).join('; ');
    throw new ValidationError(`Invalid ${subject}: ${list}. Check the values against the API's schema.`, issues, { details });
  }
}

function stripSchemaId(schema: JsonSchema): JsonSchema {
  // Ajv 8 knows draft-07 but not under the `$schema` URL with a trailing '#'; the meta-schema is
  // not needed for validating values, so drop the key for compilation only.
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}

function pointerToPath(pointer: string): string {
  if (pointer === '') return '$';
  return (
    '$' +
    pointer
      .split('/')
      .slice(1)
      .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : /^[A-Za-z_$][\w$]*$/.test(seg) ? `.${seg}` : `[${JSON.stringify(seg)}]`))
      .join('')
  );
}

function child(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function toIssue(error: ErrorObject): ValidationIssue {
  const path = pointerToPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { path: child(path, String(params['missingProperty'])), message: 'is required but missing' };
    case 'additionalProperties':
      return { path: child(path, String(params['additionalProperty'])), message: 'is not an allowed parameter or property' };
    case 'type':
      return { path, message: `must be ${String(params['type'])}` };
    default:
      return { path, message: error.message ?? `fails the "${error.keyword}" rule` };
  }
}
