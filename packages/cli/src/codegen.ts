/**
 * `lightbus codegen`: TypeScript API definitions generated from the JSON Schemas published on
 * the bus, so a service gets typed `bus.x.y()` calls and listeners for an API it does not own —
 * one written in Python included.
 *
 * Each API becomes a `defineApi({...})` whose parameters and results are written with core's
 * `Type` builders (TypeBox): string, number, integer, boolean, null, array, tuple, object,
 * record, enum and const (literals), anyOf/oneOf (union), allOf (intersect), local `$ref`s
 * (inlined), `{}` (unknown); `date-time` strings become `Types.DateTime()` and base64 strings
 * `Types.Bytes()`; an optional parameter with a default becomes `Types.Default(...)`. Member
 * names are camelCase in TypeScript, and every member keeps its wire name explicitly
 * (`name: 'check_password'`), so names that do not round-trip through snake_case still match.
 *
 * @module
 */
import { toCamelCase, type ApiSchema, type JsonSchema } from '@lightbus/core';

/** Options of {@link generateDeclarations}. */
export interface CodegenOptions {
  /** Only these APIs. Default: every API given. */
  apis?: readonly string[];
  /** Include Python's internal APIs (`internal.*`). Default false. */
  includeInternal?: boolean;
  /** Where `defineApi`, `event`, `rpc`, `Type` and `Types` are imported from. Default `@lightbus/core`. */
  coreModule?: string;
  /** Where the schemas came from, for the header comment. */
  source?: string;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const RESERVED_WORDS = new Set(
  'break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface package private protected public await'.split(
    ' ',
  ),
);

/** Writes `key` as an object literal key. */
function key(name: string): string {
  return IDENTIFIER.test(name) ? name : JSON.stringify(name);
}

/** A JavaScript literal of a JSON value. */
function literal(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined';
}

/** JSON Schema keywords copied into the builder's options object as they are. */
const PASSED_KEYWORDS = [
  'description',
  'format',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
  'default',
  'examples',
] as const;

interface Context {
  /** The document `$ref`s resolve against. */
  root: JsonSchema;
  /** `$ref`s being expanded (recursion guard). */
  refs: Set<string>;
  /** Set when `Types` is used, to import it. */
  usesTypes: { value: boolean };
}

function isObject(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function options(schema: JsonSchema, omit: readonly string[] = []): string {
  const entries = PASSED_KEYWORDS.filter((k) => schema[k] !== undefined && !omit.includes(k)).map((k) => `${k}: ${literal(schema[k])}`);
  return entries.length === 0 ? '' : `{ ${entries.join(', ')} }`;
}

function call(builder: string, args: string[]): string {
  return `${builder}(${args.filter((a) => a !== '').join(', ')})`;
}

function pad(level: number): string {
  return '  '.repeat(level);
}

function resolveRef(ref: string, ctx: Context): JsonSchema | undefined {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = ctx.root;
  for (const part of ref.slice(2).split('/')) {
    const segment = decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(node)) return undefined;
    node = node[segment];
  }
  return isObject(node) || typeof node === 'boolean' ? (node as JsonSchema) : undefined;
}

function primitiveLiteral(value: unknown): string | undefined {
  if (value === null) return 'Type.Null()';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return `Type.Literal(${literal(value)})`;
  return undefined;
}

/**
 * TypeBox builder code for one JSON Schema (`{ "type": "string" }` → `Type.String()`).
 * @param schema the JSON Schema (draft-07)
 * @param level indentation level of the line the code starts on
 * @param ctx `$ref` root and bookkeeping; a fresh one when left out
 */
export function schemaToTypeBox(schema: unknown, level = 0, ctx?: Context): string {
  const context: Context = ctx ?? { root: isObject(schema) ? schema : {}, refs: new Set(), usesTypes: { value: false } };
  if (schema === true || schema === undefined) return 'Type.Unknown()';
  if (schema === false) return 'Type.Never()';
  if (!isObject(schema)) return 'Type.Unknown()';

  if (typeof schema['$ref'] === 'string') {
    const ref = schema['$ref'];
    const target = context.refs.has(ref) ? undefined : resolveRef(ref, context);
    if (target === undefined) return call('Type.Unknown', [options(schema)]);
    context.refs.add(ref);
    try {
      return schemaToTypeBox(target, level, context);
    } finally {
      context.refs.delete(ref);
    }
  }
  if ('const' in schema) {
    return primitiveLiteral(schema['const']) ?? call('Type.Unknown', [options(schema)]);
  }
  if (Array.isArray(schema['enum'])) {
    const members = (schema['enum'] as unknown[]).map(primitiveLiteral);
    if (members.length > 0 && members.every((m): m is string => m !== undefined)) {
      return members.length === 1 ? members[0]! : `Type.Union([${members.join(', ')}]${withOptions(schema, ['default', 'examples'])})`;
    }
    return call('Type.Unknown', [options(schema)]);
  }
  for (const [keyword, builder] of [
    ['anyOf', 'Type.Union'],
    ['oneOf', 'Type.Union'],
    ['allOf', 'Type.Intersect'],
  ] as const) {
    const list = schema[keyword];
    if (Array.isArray(list) && list.length > 0) {
      // Sibling keywords (a shared `type`, say) apply to every branch.
      const { [keyword]: _branches, ...siblings } = schema;
      const shared = Object.keys(siblings).some((k) => !['description', 'title', '$schema', 'default', 'examples', 'definitions', '$defs'].includes(k));
      const branches = (list as unknown[]).map((b) => schemaToTypeBox(shared && isObject(b) ? { ...siblings, ...b } : b, level, context));
      if (branches.length === 1) return branches[0]!;
      return `${builder}([${branches.join(', ')}]${withOptions(schema, ['format'])})`;
    }
  }
  const type = schema['type'];
  if (Array.isArray(type)) {
    const branches = (type as unknown[]).map((t) => schemaToTypeBox({ ...schema, type: t }, level, context));
    return branches.length === 1 ? branches[0]! : `Type.Union([${branches.join(', ')}])`;
  }
  const kind = typeof type === 'string' ? type : isObject(schema['properties']) || schema['additionalProperties'] !== undefined ? 'object' : schema['items'] !== undefined ? 'array' : undefined;
  switch (kind) {
    case 'string': {
      if (schema['format'] === 'date-time' && schema['pattern'] === undefined) {
        context.usesTypes.value = true;
        return call('Types.DateTime', [descriptionOnly(schema)]);
      }
      if (schema['contentEncoding'] === 'base64') {
        context.usesTypes.value = true;
        return call('Types.Bytes', [descriptionOnly(schema)]);
      }
      return call('Type.String', [options(schema)]);
    }
    case 'number':
      return call('Type.Number', [options(schema)]);
    case 'integer':
      return call('Type.Integer', [options(schema)]);
    case 'boolean':
      return call('Type.Boolean', [options(schema)]);
    case 'null':
      return call('Type.Null', [options(schema)]);
    case 'array': {
      const items = schema['items'];
      if (Array.isArray(items)) {
        return call('Type.Tuple', [`[${items.map((i) => schemaToTypeBox(i, level, context)).join(', ')}]`, options(schema)]);
      }
      return call('Type.Array', [schemaToTypeBox(items ?? true, level, context), options(schema)]);
    }
    case 'object':
      return objectToTypeBox(schema, level, context);
    default:
      return call('Type.Unknown', [options(schema)]);
  }
}

function withOptions(schema: JsonSchema, omit: readonly string[]): string {
  const o = options(schema, omit);
  return o === '' ? '' : `, ${o}`;
}

function descriptionOnly(schema: JsonSchema): string {
  return typeof schema['description'] === 'string' ? `{ description: ${literal(schema['description'])} }` : '';
}

function objectToTypeBox(schema: JsonSchema, level: number, context: Context): string {
  const properties = isObject(schema['properties']) ? schema['properties'] : {};
  const additional = schema['additionalProperties'];
  const names = Object.keys(properties);
  const patterns = isObject(schema['patternProperties']) ? Object.entries(schema['patternProperties']) : [];
  // TypeBox's Record(String, V) writes `patternProperties: { "^(.*)$": V }`.
  const anyKey = patterns.length === 1 && ['^(.*)$', '^.*$', '.*'].includes(patterns[0]![0]) ? patterns[0]![1] : undefined;
  if (names.length === 0 && additional !== false) {
    const valueSchema = anyKey ?? additional;
    const values = isObject(valueSchema) ? schemaToTypeBox(valueSchema, level, context) : 'Type.Unknown()';
    return call('Type.Record', ['Type.String()', values, options(schema)]);
  }
  const required = new Set(Array.isArray(schema['required']) ? (schema['required'] as string[]) : []);
  const body = propertiesCode(properties, required, level + 1, context, false);
  const opts: string[] = [];
  const base = options(schema);
  if (base !== '') opts.push(base.slice(2, -2));
  if (additional === false) opts.push('additionalProperties: false');
  else if (isObject(additional)) opts.push(`additionalProperties: ${schemaToTypeBox(additional, level, context)}`);
  return call('Type.Object', [body === '' ? '{}' : `{\n${body}${pad(level)}}`, opts.length > 0 ? `{ ${opts.join(', ')} }` : '']);
}

/**
 * The lines of an object literal of property builders, one per property: required ones as they
 * are, others wrapped in `Type.Optional(...)`, or `Types.Default(..., value)` when `useDefaults`
 * and the property has a default (parameters: callers may leave it out, handlers always get it).
 */
function propertiesCode(properties: JsonSchema, required: ReadonlySet<string>, level: number, context: Context, useDefaults: boolean): string {
  let out = '';
  for (const [name, property] of Object.entries(properties)) {
    let code: string;
    if (required.has(name)) {
      code = schemaToTypeBox(property, level, context);
    } else if (useDefaults && isObject(property) && property['default'] !== undefined && defaultFits(property, property['default'], context)) {
      context.usesTypes.value = true;
      const { default: value, ...rest } = property;
      code = `Types.Default(${schemaToTypeBox(rest, level, context)}, ${literal(value)})`;
    } else {
      code = `Type.Optional(${schemaToTypeBox(property, level, context)})`;
    }
    out += `${pad(level)}${key(name)}: ${code},\n`;
  }
  return out;
}

/**
 * True when `value` (a schema's `default`) has the type the schema describes, so
 * `Types.Default(schema, value)` compiles. A default that does not fit (Python's `x: int = None`)
 * stays in the schema's options of a plain optional parameter instead.
 */
function defaultFits(schema: unknown, value: unknown, context: Context): boolean {
  if (!isObject(schema)) return schema !== false;
  if (typeof schema['$ref'] === 'string') {
    const target = context.refs.has(schema['$ref']) ? undefined : resolveRef(schema['$ref'], context);
    return target === undefined || defaultFits(target, value, context);
  }
  if ('const' in schema) return JSON.stringify(schema['const']) === JSON.stringify(value);
  if (Array.isArray(schema['enum'])) return (schema['enum'] as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(value));
  for (const keyword of ['anyOf', 'oneOf'] as const) {
    const list = schema[keyword];
    if (Array.isArray(list) && list.length > 0) return list.some((branch) => defaultFits(branch, value, context));
  }
  const type = schema['type'];
  const types = Array.isArray(type) ? (type as unknown[]) : type === undefined ? [] : [type];
  if (types.length === 0) return true;
  return types.some((t) => {
    switch (t) {
      case 'string':
        return typeof value === 'string';
      case 'number':
        return typeof value === 'number';
      case 'integer':
        return Number.isInteger(value);
      case 'boolean':
        return typeof value === 'boolean';
      case 'null':
        return value === null;
      case 'array':
        return Array.isArray(value);
      case 'object':
        return isObject(value);
      default:
        return false;
    }
  });
}

/** The TypeScript identifier of an API's export: `my_company.auth` → `myCompanyAuthApi`. */
export function apiIdentifier(apiName: string): string {
  const camel = apiName
    .split('.')
    .map((part, i) => {
      const c = toCamelCase(part.replace(/^_+/, ''));
      return i === 0 ? c.charAt(0).toLowerCase() + c.slice(1) : c.charAt(0).toUpperCase() + c.slice(1);
    })
    .join('');
  const id = `${camel}Api`;
  return /^[A-Za-z_$]/.test(id) ? id : `api_${id}`;
}

/** camelCase member names for wire names, unique and valid as object keys. */
function memberNames(wireNames: readonly string[], taken: Set<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const wire of wireNames) {
    let member = toCamelCase(wire.replace(/^_+/, ''));
    if (member === '' || taken.has(member)) member = wire;
    let n = 2;
    const base = member;
    while (taken.has(member)) member = `${base}${n++}`;
    taken.add(member);
    out.set(wire, member);
  }
  return out;
}

function parametersCode(schema: unknown, level: number, context: Context): string {
  if (!isObject(schema) || !isObject(schema['properties']) || Object.keys(schema['properties']).length === 0) return '{}';
  const required = new Set(Array.isArray(schema['required']) ? (schema['required'] as string[]) : []);
  return `{\n${propertiesCode(schema['properties'], required, level + 1, context, true)}${pad(level)}}`;
}

function responseCode(schema: unknown, level: number, context: Context): string {
  if (!isObject(schema)) return schemaToTypeBox(schema, level, context);
  const { $schema: _s, title: _t, ...rest } = schema;
  return schemaToTypeBox(rest, level, context);
}

/** One API as `export const xApi = defineApi({...});`, and whether it uses `Types`. */
export function generateApi(apiName: string, schema: ApiSchema, identifier = apiIdentifier(apiName)): { code: string; usesTypes: boolean } {
  const usesTypes = { value: false };
  const lines: string[] = [];
  lines.push(`/** The \`${apiName}\` API, as published on the bus. */`);
  lines.push(`export const ${identifier} = defineApi({`);
  lines.push(`  name: ${literal(apiName)},`);
  const taken = new Set<string>();
  const eventNames = Object.keys(schema.events ?? {}).sort();
  const rpcNames = Object.keys(schema.rpcs ?? {}).sort();
  const events = memberNames(eventNames, taken);
  const rpcs = memberNames(rpcNames, taken);
  if (eventNames.length > 0) {
    lines.push('  events: {');
    for (const wire of eventNames) {
      const parameters = schema.events[wire]!.parameters;
      const context: Context = { root: isObject(parameters) ? parameters : {}, refs: new Set(), usesTypes };
      lines.push(`    ${key(events.get(wire)!)}: event({`);
      lines.push(`      name: ${literal(wire)},`);
      lines.push(`      parameters: ${parametersCode(parameters, 3, context)},`);
      lines.push('    }),');
    }
    lines.push('  },');
  }
  if (rpcNames.length > 0) {
    lines.push('  rpcs: {');
    for (const wire of rpcNames) {
      const rpcSchema = schema.rpcs[wire]!;
      const paramsContext: Context = { root: isObject(rpcSchema.parameters) ? rpcSchema.parameters : {}, refs: new Set(), usesTypes };
      const responseContext: Context = { root: isObject(rpcSchema.response) ? rpcSchema.response : {}, refs: new Set(), usesTypes };
      lines.push(`    ${key(rpcs.get(wire)!)}: rpc({`);
      lines.push(`      name: ${literal(wire)},`);
      lines.push(`      parameters: ${parametersCode(rpcSchema.parameters, 3, paramsContext)},`);
      lines.push(`      response: ${responseCode(rpcSchema.response, 3, responseContext)},`);
      lines.push('    }),');
    }
    lines.push('  },');
  }
  lines.push('});');
  return { code: lines.join('\n'), usesTypes: usesTypes.value };
}

/** The APIs `options` select from `schemas`, sorted by name. */
export function selectApis(schemas: Record<string, ApiSchema>, options: CodegenOptions = {}): string[] {
  const wanted = options.apis && options.apis.length > 0 ? new Set(options.apis) : undefined;
  return Object.keys(schemas)
    .filter((name) => (wanted ? wanted.has(name) : options.includeInternal || !(name === 'internal' || name.startsWith('internal.'))))
    .sort();
}

function header(options: CodegenOptions): string {
  return [
    '// Generated by `lightbus codegen`' + (options.source ? ` from ${options.source}` : '') + '. Do not edit: generate it again.',
    '// API definitions for calling these APIs and listening to their events with types',
    '// (pass them to createBus({ apis: [...] })). Only the owning service may register them.',
  ].join('\n');
}

function importLine(usesTypes: boolean, options: CodegenOptions): string {
  return `import { defineApi, event, rpc, Type${usesTypes ? ', Types' : ''} } from ${literal(options.coreModule ?? '@lightbus/core')};`;
}

/**
 * One TypeScript module with a `defineApi({...})` per selected API, plus `generatedApis`, the
 * list of them all. Throws when an API named in `options.apis` is not in `schemas`.
 */
export function generateDeclarations(schemas: Record<string, ApiSchema>, options: CodegenOptions = {}): string {
  const names = selectApis(schemas, options);
  const missing = (options.apis ?? []).filter((n) => !(n in schemas));
  if (missing.length > 0) {
    throw new Error(`No schema for API ${missing.join(', ')}. Known APIs: ${Object.keys(schemas).sort().join(', ') || '(none)'}.`);
  }
  const identifiers = uniqueIdentifiers(names);
  const parts = names.map((name) => generateApi(name, schemas[name]!, identifiers.get(name)));
  const usesTypes = parts.some((p) => p.usesTypes);
  return [
    header(options),
    importLine(usesTypes, options),
    '',
    ...parts.map((p) => `${p.code}\n`),
    '/** Every API in this file. */',
    `export const generatedApis = [${names.map((n) => identifiers.get(n)!).join(', ')}] as const;`,
    '',
  ].join('\n');
}

/**
 * One module per API (`{api}.ts`, with the API's definition) plus `index.ts` re-exporting them
 * and `generatedApis`. Returns file name → contents.
 */
export function generateDeclarationFiles(schemas: Record<string, ApiSchema>, options: CodegenOptions = {}): Map<string, string> {
  const names = selectApis(schemas, options);
  const identifiers = uniqueIdentifiers(names);
  const files = new Map<string, string>();
  const index: string[] = [header(options)];
  for (const name of names) {
    const { code, usesTypes } = generateApi(name, schemas[name]!, identifiers.get(name));
    files.set(`${name}.ts`, [header(options), importLine(usesTypes, options), '', code, ''].join('\n'));
    index.push(`import { ${identifiers.get(name)!} } from './${name}.js';`);
  }
  index.push('');
  index.push(`export { ${names.map((n) => identifiers.get(n)!).join(', ')} };`);
  index.push('/** Every generated API. */');
  index.push(`export const generatedApis = [${names.map((n) => identifiers.get(n)!).join(', ')}] as const;`);
  index.push('');
  files.set('index.ts', index.join('\n'));
  return files;
}

function uniqueIdentifiers(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const taken = new Set<string>(['generatedApis', 'defineApi', 'event', 'rpc', 'Type', 'Types']);
  for (const name of names) {
    let id = apiIdentifier(name);
    if (RESERVED_WORDS.has(id)) id = `${id}_`;
    const base = id;
    let n = 2;
    while (taken.has(id)) id = `${base}${n++}`;
    taken.add(id);
    out.set(name, id);
  }
  return out;
}
