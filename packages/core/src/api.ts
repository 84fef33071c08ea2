/**
 * Defining an API: its name, version, events and RPCs. One definition gives the TypeScript types
 * of callers, listeners and implementers, the JSON Schema document published on the bus, and
 * run-time validation.
 *
 * @example
 * ```ts
 * import { defineApi, event, rpc, Type } from '@lightbus/core';
 *
 * export const authApi = defineApi({
 *   name: 'auth',
 *   events: {
 *     userRegistered: event({ parameters: { username: Type.String(), email: Type.String() } }),
 *   },
 *   rpcs: {
 *     checkPassword: rpc({
 *       parameters: { username: Type.String(), password: Type.String() },
 *       response: Type.Boolean(),
 *     }),
 *   },
 * });
 * ```
 * Member names are written in camelCase in TypeScript and travel in snake_case on the wire
 * (`checkPassword` ↔ `check_password`), as Python services name them. Give `name` to an event or
 * RPC to choose its wire name yourself. Parameter names are sent exactly as written.
 *
 * @module
 */
import { Type, type Static, type TObject, type TProperties, type TSchema, type TUnknown } from '@sinclair/typebox';
import { ErrorCodes, LightbusError } from './errors.js';
import { API_NAME_PATTERN, MEMBER_NAME_PATTERN, toSnakeCase } from './naming.js';
import { parametersSchema, responseSchema, titles, type ApiSchema, type JsonSchema } from './schema.js';
import type { HasDefault } from './types.js';
import type { RpcContext } from './bus-types.js';

/** Parameters: an object of schemas, or (untyped, as in Python) a list of names. */
export type ParameterSpec = TProperties | readonly string[];

/** The schema object a {@link ParameterSpec} stands for. */
export type NormalizeParameters<P> = P extends readonly string[]
  ? { [K in P[number]]: TUnknown }
  : P extends TProperties
    ? P
    : never;

/** An event of an API. Build with {@link event}. */
export interface EventDefinition<P extends TProperties = TProperties> {
  /** Discriminator. */
  readonly kind: 'event';
  /** Parameter schemas. */
  readonly parameters: P;
  /** The wire name, when chosen explicitly. */
  readonly name?: string | undefined;
  /** Shown in docs and schema dumps. */
  readonly description?: string | undefined;
}

/** An RPC of an API. Build with {@link rpc}. */
export interface RpcDefinition<P extends TProperties = TProperties, R extends TSchema = TSchema> {
  /** Discriminator. */
  readonly kind: 'rpc';
  /** Parameter schemas. */
  readonly parameters: P;
  /** Result schema. */
  readonly response: R;
  /** The wire name, when chosen explicitly. */
  readonly name?: string | undefined;
  /** Shown in docs and schema dumps. */
  readonly description?: string | undefined;
  /** Default timeout of calls to this RPC, in seconds (overrides the API's `rpc_timeout`). */
  readonly timeout?: number | undefined;
  /** The implementation, when given with the definition (class style). */
  handler?(params: HandlerParams<P>, context: RpcContext): Static<R> | Promise<Static<R>>;
}

/** Serves one RPC: receives the parameters (defaults applied, values cast) and returns the result. */
export type RpcHandler<P extends TProperties, R extends TSchema> = (
  params: HandlerParams<P>,
  context: RpcContext,
) => Static<R> | Promise<Static<R>>;

/** Options of {@link event}. */
export interface EventSpec<P extends ParameterSpec> {
  /** Parameter schemas (`{ username: Type.String() }`) or bare names (`['username']`). */
  parameters: P;
  /** The wire name. Default: the member name in snake_case. */
  name?: string;
  /** A description. */
  description?: string;
}

/** Options of {@link rpc}. */
export interface RpcSpec<P extends ParameterSpec, R extends TSchema> {
  /** Parameter schemas (`{ username: Type.String() }`) or bare names. */
  parameters: P;
  /** The result's schema. Default: any value (`{}`). */
  response?: R;
  /** The wire name. Default: the member name in snake_case. */
  name?: string;
  /** A description. */
  description?: string;
  /** Default timeout of calls, in seconds. */
  timeout?: number;
}

function normalizeParameters(parameters: ParameterSpec): TProperties {
  if (Array.isArray(parameters)) {
    return Object.fromEntries((parameters as readonly string[]).map((name) => [name, Type.Unknown()]));
  }
  return parameters as TProperties;
}

/** Declares an event. */
export function event<const P extends ParameterSpec>(spec: EventSpec<P>): EventDefinition<NormalizeParameters<P>> {
  return {
    kind: 'event',
    parameters: normalizeParameters(spec.parameters) as NormalizeParameters<P>,
    name: spec.name,
    description: spec.description,
  };
}

/** An RPC declared together with its implementation. */
export type HandledRpcDefinition<P extends TProperties, R extends TSchema> = RpcDefinition<P, R> & {
  handler(params: HandlerParams<P>, context: RpcContext): Static<R> | Promise<Static<R>>;
};

/** Declares an RPC; give its implementation to `registerApi`. */
export function rpc<const P extends ParameterSpec, R extends TSchema = TUnknown>(spec: RpcSpec<P, R>): RpcDefinition<NormalizeParameters<P>, R>;
/** Declares an RPC with its implementation (the class style does this). */
export function rpc<const P extends ParameterSpec, R extends TSchema = TUnknown>(
  spec: RpcSpec<P, R>,
  handler: RpcHandler<NormalizeParameters<P>, R>,
): HandledRpcDefinition<NormalizeParameters<P>, R>;
export function rpc<const P extends ParameterSpec, R extends TSchema = TUnknown>(
  spec: RpcSpec<P, R>,
  handler?: RpcHandler<NormalizeParameters<P>, R>,
): RpcDefinition<NormalizeParameters<P>, R> {
  return {
    ...(handler ? { handler } : {}),
    kind: 'rpc',
    parameters: normalizeParameters(spec.parameters) as NormalizeParameters<P>,
    response: (spec.response ?? Type.Unknown()) as R,
    name: spec.name,
    description: spec.description,
    timeout: spec.timeout,
  };
}

/** Events of an API, by member name. */
export type EventMap = Record<string, EventDefinition<TProperties>>;
/** RPCs of an API, by member name. */
export type RpcMap = Record<string, RpcDefinition<TProperties, TSchema>>;

/** What {@link defineApi} takes. */
export interface ApiSpec<N extends string, E extends EventMap, R extends RpcMap> {
  /** The API name: identifiers joined by dots (`auth`, `support.case`). */
  name: N;
  /** The API version sent with every event. Default 1. */
  version?: number;
  /** Events by member name. */
  events?: E;
  /** RPCs by member name. */
  rpcs?: R;
  /** A description. */
  description?: string;
}

/** Run-time facts about one event of a definition. */
export interface EventInfo {
  /** The TypeScript member name. */
  member: string;
  /** The wire name. */
  wireName: string;
  /** The published parameters schema. */
  parametersSchema: JsonSchema;
  /** The object schema with cast marks, for typed receivers. */
  castSchema: TSchema;
}

/** Run-time facts about one RPC of a definition. */
export interface RpcInfo {
  /** The TypeScript member name. */
  member: string;
  /** The wire name. */
  wireName: string;
  /** The published parameters schema. */
  parametersSchema: JsonSchema;
  /** The published response schema. */
  responseSchema: JsonSchema;
  /** Parameter object schema with cast marks. */
  castSchema: TSchema;
  /** Response schema with cast marks. */
  castResponse: TSchema;
  /** Default timeout in seconds, if the RPC sets one. */
  timeout: number | undefined;
}

/** A defined API. Build with {@link defineApi}. */
export interface ApiDefinition<N extends string = string, E extends EventMap = EventMap, R extends RpcMap = RpcMap> {
  /** The API name. */
  readonly name: N;
  /** The API version. */
  readonly version: number;
  /** Events by member name. */
  readonly events: E;
  /** RPCs by member name. */
  readonly rpcs: R;
  /** A description. */
  readonly description: string | undefined;
  /** The schema document published on the bus (exactly Python Lightbus's shape). */
  readonly schema: ApiSchema;
  /** Events by member name and by wire name. */
  readonly eventInfo: ReadonlyMap<string, EventInfo>;
  /** RPCs by member name and by wire name. */
  readonly rpcInfo: ReadonlyMap<string, RpcInfo>;
}

/** Any API definition. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyApi = ApiDefinition<string, any, any>;

function invalid(message: string): LightbusError {
  return new LightbusError(ErrorCodes.API_DEFINITION_INVALID, message);
}

function requiredNames(parameters: TProperties): string[] {
  return Object.entries(parameters)
    .filter(([, schema]) => !isOptional(schema))
    .map(([name]) => name);
}

const OptionalKind = Symbol.for('TypeBox.Optional');
function isOptional(schema: TSchema): boolean {
  return (schema as unknown as Record<symbol, unknown>)[OptionalKind] === 'Optional';
}

/** What a class-style API declares in `static meta`. */
export interface ApiMeta {
  /** The API name. */
  readonly name: string;
  /** The API version. Default 1. */
  readonly version?: number;
  /** A description. */
  readonly description?: string;
}

/**
 * Base class of class-style APIs, close to Python Lightbus:
 *
 * ```ts
 * class AuthApi extends Api {
 *   static readonly meta = { name: 'auth' } as const;
 *   userRegistered = event({ parameters: { username: Type.String(), email: Type.String() } });
 *   checkPassword = rpc(
 *     { parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() },
 *     ({ username, password }) => username === 'admin' && password === 'secret',
 *   );
 * }
 * const authApi = defineApi(AuthApi);   // the same definition (and schema) as the object style
 * bus.registerApi(authApi);             // the handlers come with the class
 * ```
 * Events are fields built with `event()`, RPCs fields built with `rpc(spec, handler)`. The class
 * declares `static readonly meta = { name, version? } as const` (as const keeps the name typed).
 */
export abstract class Api {}

/** A class extending {@link Api}. */
export type ApiClass = (abstract new () => Api) & { readonly meta: ApiMeta };

type KeysOfKind<T, K extends string> = { [P in keyof T]: T[P] extends { readonly kind: K } ? P : never }[keyof T];

/** The definition {@link defineApi} builds from an {@link Api} class. */
export type ClassApiDefinition<C extends ApiClass> = ApiDefinition<
  C['meta']['name'],
  { [K in KeysOfKind<InstanceType<C>, 'event'> & string]: InstanceType<C>[K] extends EventDefinition<infer P> ? EventDefinition<P> : never },
  {
    [K in KeysOfKind<InstanceType<C>, 'rpc'> & string]: InstanceType<C>[K] extends HandledRpcDefinition<infer P, infer R>
      ? HandledRpcDefinition<P, R>
      : InstanceType<C>[K] extends RpcDefinition<infer P, infer R>
        ? RpcDefinition<P, R>
        : never;
  }
>;

const classDefinitions = new WeakMap<object, AnyApi>();

/** Defines an API from an {@link Api} class. */
export function defineApi<const C extends ApiClass>(apiClass: C): ClassApiDefinition<C>;
/** Defines an API. Throws `LB_API_DEFINITION_INVALID` for a bad name or member. */
export function defineApi<const N extends string, const E extends EventMap = {}, const R extends RpcMap = {}>(
  spec: ApiSpec<N, E, R>,
): ApiDefinition<N, E, R>;
export function defineApi(specOrClass: ApiSpec<string, EventMap, RpcMap> | ApiClass): AnyApi {
  if (typeof specOrClass === 'function') {
    const cached = classDefinitions.get(specOrClass);
    if (cached) return cached;
    const meta = (specOrClass as { meta?: ApiMeta }).meta;
    if (!meta || typeof meta !== 'object') {
      throw invalid(`${specOrClass.name || 'The API class'} needs \`static readonly meta = { name: '...' } as const\`.`);
    }
    const instance = new (specOrClass as unknown as new () => Record<string, unknown>)();
    const events: EventMap = {};
    const rpcs: RpcMap = {};
    for (const [key, value] of Object.entries(instance)) {
      const kind = (value as { kind?: unknown } | null)?.kind;
      if (kind === 'event') events[key] = value as EventDefinition;
      else if (kind === 'rpc') rpcs[key] = value as RpcDefinition;
    }
    const definition = buildApi({ name: meta.name, version: meta.version, description: meta.description, events, rpcs });
    classDefinitions.set(specOrClass, definition);
    return definition;
  }
  return buildApi(specOrClass);
}

function buildApi<const N extends string, const E extends EventMap, const R extends RpcMap>(
  spec: ApiSpec<N, E, R>,
): ApiDefinition<N, E, R> {
  const { name } = spec;
  if (typeof name !== 'string' || !API_NAME_PATTERN.test(name)) {
    throw invalid(
      `The API name ${JSON.stringify(name)} is not valid. Use identifiers joined by dots, such as "auth" or "my_company.auth".`,
    );
  }
  if (name === 'default') throw invalid('"default" cannot be an API name: it is the fallback key of the apis config.');
  const version = spec.version ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    throw invalid(`API ${name}: version must be a positive integer, got ${JSON.stringify(spec.version)}.`);
  }
  const events = (spec.events ?? {}) as E;
  const rpcs = (spec.rpcs ?? {}) as R;
  const schema: ApiSchema = { events: {}, rpcs: {} };
  const eventInfo = new Map<string, EventInfo>();
  const rpcInfo = new Map<string, RpcInfo>();
  const wireNames = new Set<string>();

  const checkMember = (member: string, def: { kind: string; name?: string | undefined; parameters: TProperties }, kind: 'event' | 'rpc') => {
    if (def?.kind !== kind) {
      throw invalid(`API ${name}: ${kind}s.${member} must be built with ${kind}({...}), got ${typeof def}.`);
    }
    const wire = def.name ?? toSnakeCase(member);
    if (!MEMBER_NAME_PATTERN.test(wire)) throw invalid(`API ${name}: ${JSON.stringify(wire)} is not a valid ${kind} name.`);
    if (wireNames.has(wire)) throw invalid(`API ${name}: two members share the wire name "${wire}". Give one an explicit name.`);
    wireNames.add(wire);
    for (const param of Object.keys(def.parameters)) {
      if (!MEMBER_NAME_PATTERN.test(param)) {
        throw invalid(`API ${name}: parameter ${JSON.stringify(param)} of ${wire} is not a valid name (letters, digits, _).`);
      }
    }
    return wire;
  };

  for (const [member, def] of Object.entries(events)) {
    const wire = checkMember(member, def, 'event');
    const parameters = parametersSchema(def.parameters, requiredNames(def.parameters), titles.eventParameters(name, wire));
    schema.events[wire] = { parameters };
    const info: EventInfo = { member, wireName: wire, parametersSchema: parameters, castSchema: Type.Object(def.parameters) };
    eventInfo.set(member, info);
    eventInfo.set(wire, info);
  }
  for (const [member, def] of Object.entries(rpcs)) {
    const wire = checkMember(member, def, 'rpc');
    const parameters = parametersSchema(def.parameters, requiredNames(def.parameters), titles.rpcParameters(name, wire));
    const response = responseSchema(def.response, titles.rpcResponse(name, wire));
    schema.rpcs[wire] = { parameters, response };
    const info: RpcInfo = {
      member,
      wireName: wire,
      parametersSchema: parameters,
      responseSchema: response,
      castSchema: Type.Object(def.parameters),
      castResponse: def.response,
      timeout: def.timeout,
    };
    rpcInfo.set(member, info);
    rpcInfo.set(wire, info);
  }
  return Object.freeze({ name, version, events, rpcs, description: spec.description, schema, eventInfo, rpcInfo });
}

// ---------------------------------------------------------------------------------------------
// Types derived from a definition

/** Keys of parameters built with `Types.Default`. */
type DefaultKeys<P extends TProperties> = { [K in keyof P]: HasDefault<P[K]> extends true ? K : never }[keyof P];

/** What a caller passes: required parameters, optional ones and those with defaults. */
export type CallParams<P extends TProperties> = Static<TObject<P>>;

/** What a handler receives: parameters with defaults are always present. */
export type HandlerParams<P extends TProperties> = [DefaultKeys<P>] extends [never]
  ? Static<TObject<P>>
  : Omit<Static<TObject<P>>, DefaultKeys<P>> & { [K in DefaultKeys<P> & keyof Static<TObject<P>>]-?: Exclude<Static<TObject<P>>[K], undefined> };

/** True when every RPC of `A` was declared with its handler (so registerApi needs no implementation). */
export type AllRpcsHandled<A extends AnyApi> = {
  [K in keyof A['rpcs']]: A['rpcs'][K] extends { readonly handler: (...args: never[]) => unknown } ? never : K;
}[keyof A['rpcs']] extends never
  ? true
  : false;

/** The parameters a caller passes to RPC `K` of API `A`. */
export type RpcParams<A extends AnyApi, K extends keyof A['rpcs']> = CallParams<A['rpcs'][K]['parameters']>;
/** The result of RPC `K` of API `A`. */
export type RpcResult<A extends AnyApi, K extends keyof A['rpcs']> = Static<A['rpcs'][K]['response']>;
/** The parameters a listener of event `K` of API `A` receives. */
export type EventParams<A extends AnyApi, K extends keyof A['events']> = HandlerParams<A['events'][K]['parameters']>;
