/**
 * Converting values JSON cannot carry, as the protocol does: dates become ISO 8601 strings,
 * bigints become decimal strings, bytes become base64, sets become arrays and maps become
 * objects. Typed receivers get them cast back, guided by the schema builders in
 * {@link Types} (`Types.DateTime()`, `Types.BigInt()`, `Types.Bytes()`, `Types.Map()`,
 * `Types.Set()`).
 *
 * @module
 */
import { ValidationError } from './errors.js';

/** Symbol on a schema object telling {@link castFromJson} how to rebuild the value. */
export const CAST = Symbol.for('lightbus.cast');

/** The cast kinds a schema may carry under {@link CAST}. */
export type CastKind = 'date' | 'bigint' | 'bytes' | 'map' | 'set';

const MAX_DEPTH = 256;

/**
 * Turns a value into plain JSON values (the protocol's "deform"). `undefined` object members are
 * left out, as `JSON.stringify` does. Throws a {@link ValidationError} on cycles or values that
 * cannot be sent (functions, symbols), naming where (`$.user.tags[2]`) with `path` as the root.
 */
export function toJson(value: unknown, path = '$'): unknown {
  try {
    return convert(value, 0, []);
  } catch (error) {
    if (error instanceof Unsendable) throw cannotSend(path + error.segments.reverse().join(''), error.what);
    throw error;
  }
}

/** Thrown inside {@link convert}; each level adds its path segment on the way out (paths are built only on failure). */
class Unsendable extends Error {
  readonly segments: string[] = [];
  constructor(readonly what: string) {
    super(what);
  }
}

function convert(value: unknown, depth: number, parents: object[]): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'undefined':
      return null;
    case 'function':
    case 'symbol':
      throw new Unsendable(`is a ${typeof value}, which cannot be sent`);
    default:
      break;
  }
  if (value === null) return null;
  if (depth > MAX_DEPTH) throw new Unsendable(`is nested deeper than ${MAX_DEPTH} levels`);
  const obj = value as object;
  if (obj instanceof Date) {
    if (Number.isNaN(obj.getTime())) throw new Unsendable('is an invalid Date');
    return obj.toISOString();
  }
  if (obj instanceof Uint8Array) return Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64');
  if (obj instanceof ArrayBuffer) return Buffer.from(obj).toString('base64');
  // The objects being converted above this one (at most MAX_DEPTH): a cycle comes back to one.
  if (parents.includes(obj)) throw new Unsendable('contains a cycle (an object that refers to itself)');
  parents.push(obj);
  let segment = '';
  try {
    if (Array.isArray(obj)) {
      const out = new Array<unknown>(obj.length);
      for (let i = 0; i < obj.length; i++) {
        segment = `[${i}]`;
        out[i] = convert(obj[i], depth + 1, parents);
      }
      return out;
    }
    if (obj instanceof Set) {
      const out: unknown[] = [];
      for (const item of obj) {
        segment = `[${out.length}]`;
        out.push(convert(item, depth + 1, parents));
      }
      return out;
    }
    if (obj instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of obj) {
        segment = `.${String(k)}`;
        defineData(out, String(k), convert(v, depth + 1, parents));
      }
      return out;
    }
    const withToJson = obj as { toJSON?: () => unknown };
    if (typeof withToJson.toJSON === 'function') {
      segment = '';
      return convert(withToJson.toJSON(), depth + 1, parents);
    }
    const out: Record<string, unknown> = {};
    const record = obj as Record<string, unknown>;
    for (const k in record) {
      if (!Object.prototype.hasOwnProperty.call(record, k)) continue;
      const v = record[k];
      if (v === undefined) continue;
      segment = `.${k}`;
      defineData(out, k, convert(v, depth + 1, parents));
    }
    return out;
  } catch (error) {
    if (error instanceof Unsendable && segment) error.segments.push(segment);
    throw error;
  } finally {
    parents.pop();
  }
}

/**
 * Rebuilds typed values (Date, bigint, Uint8Array, Map, Set) from JSON, following the schema's
 * {@link CAST} marks. Values that do not fit are returned unchanged: validation reports them.
 */
export function castFromJson(value: unknown, schema: unknown): unknown {
  // Most schemas have nothing to cast: skip the walk (and its key list) for every message.
  if (schema === null || typeof schema !== 'object' || !hasCasts(schema)) return value;
  return castWalk(value, schema);
}

/** Whether a schema carries a {@link CAST} mark where {@link castFromJson} looks (memoized per schema object). */
function hasCasts(schema: object): boolean {
  let found = castMarks.get(schema);
  if (found === undefined) {
    castMarks.set(schema, false); // provisional: a schema object that contains itself ends here
    const s = schema as Record<string | symbol, unknown>;
    const props = s['properties'];
    found =
      s[CAST] !== undefined ||
      (s['items'] !== null && typeof s['items'] === 'object' && hasCasts(s['items'])) ||
      (props !== null && typeof props === 'object' && Object.values(props).some((p) => p !== null && typeof p === 'object' && hasCasts(p as object)));
    castMarks.set(schema, found);
  }
  return found;
}

const castMarks = new WeakMap<object, boolean>();

function castWalk(value: unknown, schema: unknown): unknown {
  if (schema === null || typeof schema !== 'object') return value;
  const s = schema as Record<string | symbol, unknown>;
  const kind = s[CAST] as CastKind | undefined;
  if (kind !== undefined) return castKind(kind, value, s);
  if (Array.isArray(value) && s['items'] && typeof s['items'] === 'object') {
    return value.map((item) => castWalk(item, s['items']));
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && s['properties']) {
    const props = s['properties'] as Record<string, unknown>;
    let out: Record<string, unknown> | undefined;
    for (const key of Object.keys(props)) {
      if (!Object.hasOwn(value, key)) continue;
      const current = (value as Record<string, unknown>)[key];
      const next = castWalk(current, props[key]);
      if (next !== current) {
        out ??= { ...(value as Record<string, unknown>) };
        defineData(out, key, next);
      }
    }
    return out ?? value;
  }
  return value;
}

function castKind(kind: CastKind, value: unknown, schema: Record<string, unknown>): unknown {
  switch (kind) {
    case 'date': {
      if (typeof value !== 'string') return value;
      const date = new Date(value);
      return Number.isNaN(date.getTime()) ? value : date;
    }
    case 'bigint':
      if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
      if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
      return value;
    case 'bytes':
      return typeof value === 'string' ? new Uint8Array(Buffer.from(value, 'base64')) : value;
    case 'set':
      return Array.isArray(value) ? new Set(value.map((item) => castFromJson(item, schema['items']))) : value;
    case 'map':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
      return new Map(Object.entries(value).map(([k, v]) => [k, castFromJson(v, schema['additionalProperties'])]));
  }
}

/** Sets an own data property, safe for keys such as `__proto__`. */
export function defineData(target: Record<string, unknown>, key: string, value: unknown): void {
  // Plain assignment is much faster; only `__proto__` would reach the prototype through it.
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * An upper bound of the UTF-8 size of `JSON.stringify(value)` for a value already made of JSON
 * values, computed without serializing (each string character counted as its longest escape).
 * Used to skip the exact size check for messages far below the limit.
 */
export function jsonSizeUpperBound(value: unknown, stopAbove = Number.POSITIVE_INFINITY): number {
  let size = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') size += v.length * 6 + 2;
    else if (typeof v === 'number') size += 24;
    else if (typeof v === 'boolean' || v === null || v === undefined) size += 5;
    else if (Array.isArray(v)) {
      size += 2 + v.length;
      for (const item of v) stack.push(item);
    } else if (typeof v === 'object') {
      size += 2;
      const record = v as Record<string, unknown>;
      for (const k in record) {
        if (!Object.prototype.hasOwnProperty.call(record, k)) continue;
        size += k.length * 6 + 4;
        stack.push(record[k]);
      }
    }
    if (size > stopAbove) return size;
  }
  return size;
}

function cannotSend(path: string, what: string): ValidationError {
  return new ValidationError(`Cannot send the value at ${path}: it ${what}. Pass plain data (JSON values, Date, bigint, Uint8Array, Map, Set).`, [
    { path, message: what },
  ]);
}
