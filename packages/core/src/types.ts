/**
 * Schema builders for API parameters and results. `Type` is TypeBox's builder (re-exported): each
 * call gives a JSON Schema object and its TypeScript type at once. {@link Types} adds the values
 * JSON cannot carry (dates, bigints, bytes, maps, sets) and parameters with defaults.
 *
 * @example
 * ```ts
 * import { Type, Types } from '@lightbus/core';
 * const parameters = {
 *   username: Type.String(),
 *   joined: Types.DateTime(),
 *   isAdmin: Types.Default(Type.Boolean(), false),
 * };
 * ```
 *
 * @module
 */
import { Type, type TSchema, type TOptional, type Static } from '@sinclair/typebox';
import { CAST } from './codec.js';

export { Type };
export type { TSchema, Static };

declare const DEFAULT_BRAND: unique symbol;

/** A parameter schema with a default: optional for callers, always present for handlers. */
export type TWithDefault<S extends TSchema> = TOptional<S> & { readonly [DEFAULT_BRAND]: true };

function mark<S extends TSchema>(schema: S, kind: string): S {
  Object.defineProperty(schema, CAST, { value: kind, enumerable: false });
  return schema;
}

/** Schema builders for values beyond plain JSON, converted on the wire as the protocol says. */
export const Types = {
  /** A `Date`, sent as an ISO 8601 string (`{"type": "string", "format": "date-time"}`). */
  DateTime(options: { description?: string } = {}) {
    return mark(Type.Unsafe<Date>({ type: 'string', format: 'date-time', ...options }), 'date');
  },
  /** A `bigint`, sent as a decimal string (`{"type": "string"}`). */
  BigInt(options: { description?: string } = {}) {
    return mark(Type.Unsafe<bigint>({ type: 'string', pattern: '^-?[0-9]+$', ...options }), 'bigint');
  },
  /** Bytes (`Uint8Array`/`Buffer`), sent as base64 (`{"type": "string", "contentEncoding": "base64"}`). */
  Bytes(options: { description?: string } = {}) {
    return mark(Type.Unsafe<Uint8Array>({ type: 'string', contentEncoding: 'base64', ...options }), 'bytes');
  },
  /** A `Map` with string keys, sent as a JSON object. */
  Map<V extends TSchema>(values: V, options: { description?: string } = {}) {
    return mark(
      Type.Unsafe<Map<string, Static<V>>>({ type: 'object', additionalProperties: values, ...options }),
      'map',
    );
  },
  /** A `Set`, sent as a JSON array without duplicates. */
  Set<V extends TSchema>(items: V, options: { description?: string } = {}) {
    return mark(Type.Unsafe<Set<Static<V>>>({ type: 'array', items, uniqueItems: true, ...options }), 'set');
  },
  /**
   * A parameter with a default value: callers may leave it out, handlers always receive it. The
   * default is written into the schema (`"default": value`), so every receiver applies it.
   */
  Default<S extends TSchema>(schema: S, value: Static<S>): TWithDefault<S> {
    const withDefault = { ...schema, default: value } as S;
    const cast = (schema as unknown as Record<symbol, unknown>)[CAST];
    if (cast !== undefined) Object.defineProperty(withDefault, CAST, { value: cast, enumerable: false });
    return Type.Optional(withDefault) as TWithDefault<S>;
  },
};

/** True when a parameter schema was built with {@link Types.Default}. */
export type HasDefault<S> = S extends { readonly [DEFAULT_BRAND]: true } ? true : false;
