/**
 * The bus: the client every process uses (call RPCs, fire and listen to events) and the worker
 * runtime `lightbus run` drives (serve RPCs, run listeners and scheduled tasks, stop gracefully).
 *
 * @module
 */
import type { AllRpcsHandled, AnyApi, EventInfo, RpcInfo } from './api.js';
import type {
  ApiClient,
  ApiImplementation,
  ApiTree,
  CallOptions,
  EventClientParams,
  EventContext,
  EventHandler,
  EventRef,
  FireOptions,
  ListenOptions,
  Listener,
  RpcContext,
  UntypedApiClient,
} from './bus-types.js';
import { castFromJson, jsonSizeUpperBound, toJson } from './codec.js';
import {
  defaultProcessName,
  defaultServiceName,
  loadConfig,
  resolveApiConfig,
  schemaTtl,
  type LightbusConfig,
  type ResolvedApiConfig,
} from './config.js';
import {
  ErrorCodes,
  LightbusError,
  RemoteError,
  TimeoutError,
  ValidationError,
  describeError,
} from './errors.js';
import { Notifier, Semaphore, settleWithin, sleep } from './internal/async.js';
import { createConsoleLogger, type Logger } from './logger.js';
import { newMessageId, type EventMessage, type Kwargs, type ResultMessage, type RpcMessage } from './messages.js';
import { toSnakeCase } from './naming.js';
import { SchemaValidator, type ApiSchema } from './schema.js';
import { TransportRegistry } from './transports/registry.js';
import type {
  EventSelector,
  EventSendOptions,
  PendingResult,
  ReceivedEvent,
  ResultTransport,
  StartPosition,
  TransportByRole,
  TransportPlugin,
  TransportRole,
} from './transports/types.js';

/** Options of {@link createBus}. */
export interface CreateBusOptions<Apis extends readonly AnyApi[]> {
  /**
   * API definitions this process knows: calls and listeners to them are typed and validated.
   * Knowing an API does not make this process its owner; {@link BusClient.registerApi} does.
   */
  apis?: Apis;
  /**
   * The configuration: an object, or a path to a YAML/JSON file. Default: the file named by
   * `LIGHTBUS_CONFIG`, else the in-memory transports.
   */
  config?: LightbusConfig | string;
  /** Transport plugins (`redisTransports` ...). A plugin not given is imported as `@lightbus/{name}`. */
  transports?: readonly TransportPlugin<never>[];
  /** The service name (overrides config). Default: config, `LIGHTBUS_SERVICE_NAME`, then the package.json name. */
  serviceName?: string;
  /** The process name (overrides config). Default: config, `LIGHTBUS_PROCESS_NAME`, then `{hostname}-{pid}`. */
  processName?: string;
  /** Where to log. Default: a console logger on stderr. */
  logger?: Logger;
}

/** Options of {@link BusClient.start}. */
export interface StartOptions {
  /** Serve the RPCs of registered APIs. Default true. */
  rpcs?: boolean;
  /** Run event listeners. Default true. */
  events?: boolean;
  /** Run scheduled tasks ({@link BusClient.every}). Default true. */
  tasks?: boolean;
}

/** Options of {@link BusClient.stop} and {@link BusClient.close}. */
export interface StopOptions {
  /** Milliseconds to let in-flight handlers finish before giving up on them. Default 10000. */
  timeoutMs?: number;
}

/** Options of {@link BusClient.every}. */
export interface TaskOptions {
  /** Runs once as soon as the worker starts, then every interval. Default false. */
  runImmediately?: boolean;
  /** A name for logs. Default: the function's name. */
  name?: string;
}

/** One line per role for the start-up summary. */
export interface BusDescription {
  /** Service name. */
  serviceName: string;
  /** Process name. */
  processName: string;
  /** APIs this process registered (serves and fires). */
  registeredApis: string[];
  /** Listeners with their events. */
  listeners: Array<{ listenerName: string; events: string[] }>;
  /** Scheduled tasks. */
  tasks: Array<{ name: string; intervalSeconds: number }>;
  /** Transport per role for each API involved (and `default`). */
  transports: Record<string, Record<TransportRole, string>>;
}

interface Registration {
  api: AnyApi;
  implementation: Record<string, (params: unknown, context: RpcContext) => unknown>;
}

interface ListenerRegistration {
  listenerName: string;
  selectors: EventSelector[];
  handler: EventHandler<Record<string, unknown>>;
  options: ListenOptions;
  controller: AbortController | undefined;
  loops: Promise<void>[];
  stopped: boolean;
}

interface TaskRegistration {
  name: string;
  intervalMs: number;
  fn: () => unknown;
  runImmediately: boolean;
}

/** How long after an RPC's deadline core gives up on a transport that has not settled the call by itself. */
const DEADLINE_GRACE_MS = 250;
/** Longest start() waits for its listeners to be subscribed on their brokers. */
const LISTENER_READY_TIMEOUT_MS = 10_000;
/** Send options of a fire() without a timeout (shared: no object per fire). */
const NO_SEND_OPTIONS: EventSendOptions = Object.freeze({});

const PATH = Symbol('lightbus.path');
const PATH_PROXY = Symbol('lightbus.pathProxy');
const SELF = Symbol('lightbus.self');
const RESERVED = new Set<PropertyKey>(['then', 'catch', 'finally', 'toJSON', 'constructor', 'inspect', 'valueOf', 'toString', 'asymmetricMatch', 'nodeType', '$$typeof']);

/**
 * The bus object. Besides these methods it exposes each known API as a property:
 * `bus.auth.checkPassword({...})`, `bus.auth.userRegistered.fire({...})`, and nested for dotted
 * names (`bus.support.case.open({...})`).
 */
export class BusClient<Apis extends readonly AnyApi[] = readonly AnyApi[]> {
  /** The service name: listener groups are `{serviceName}-{listenerName}`. */
  readonly serviceName: string;
  /** This process's name (the consumer name on the broker). */
  readonly processName: string;
  /** The logger in use. */
  readonly logger: Logger;
  /** The configuration in use (after file, environment and defaults). */
  readonly config: LightbusConfig;

  readonly #definitions = new Map<string, AnyApi>();
  readonly #registered = new Map<string, Registration>();
  readonly #listeners: ListenerRegistration[] = [];
  readonly #tasks: TaskRegistration[] = [];
  readonly #startHooks: Array<(bus: Bus<Apis>) => unknown> = [];
  readonly #stopHooks: Array<(bus: Bus<Apis>) => unknown> = [];
  #self: Bus<Apis> | undefined;
  readonly #apiConfigs = new Map<string, ResolvedApiConfig>();
  readonly #validator = new SchemaValidator();
  readonly #transports: TransportRegistry;
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Events being handled or settled and RPCs being served (counted, not tracked as promises: one less per message). */
  #handling = 0;
  readonly #handlingIdle = new Notifier();
  readonly #transportByApi = new Map<string, Promise<TransportByRole[TransportRole]>>();
  readonly #pathProxies = new Map<string, unknown>();
  #remoteSchemas: Record<string, ApiSchema> = {};
  #remoteLoadedAt = 0;
  #remoteLoading: Promise<void> | undefined;
  #published: Promise<void> | undefined;
  /** True once every registered API's schema is published (fire() then skips the check). */
  #publishedDone = false;
  /** Transports already built, by API then role: read synchronously (no key string to build) on the hot paths. */
  readonly #builtTransports = new Map<string, Partial<TransportByRole>>();
  #state: 'idle' | 'starting' | 'running' | 'stopping' | 'closed' = 'idle';
  #startOptions: Required<StartOptions> = { rpcs: true, events: true, tasks: true };
  #workerController: AbortController | undefined;
  #workerLoops: Promise<void>[] = [];

  /** Use {@link createBus}. */
  constructor(options: CreateBusOptions<Apis> = {}) {
    this.logger = options.logger ?? createConsoleLogger();
    const plugins = (options.transports ?? []) as readonly TransportPlugin<object>[];
    this.config =
      typeof options.config === 'string'
        ? loadConfig({ file: options.config, plugins })
        : loadConfig(options.config === undefined ? { plugins } : { config: options.config, plugins });
    this.serviceName = options.serviceName ?? this.config.service_name ?? defaultServiceName();
    this.processName = options.processName ?? this.config.process_name ?? defaultProcessName();
    this.#transports = new TransportRegistry(plugins, {
      serviceName: this.serviceName,
      processName: this.processName,
      logger: this.logger,
    });
    for (const api of options.apis ?? []) this.#definitions.set(api.name, api);
  }

  // -------------------------------------------------------------------------------------------
  // Registration

  /**
   * Makes this process the authoritative owner of `api`: it may fire the API's events, and a
   * started worker serves its RPCs with `implementation`. Returns a typed client of the API.
   */
  registerApi<A extends AnyApi>(
    api: A,
    ...implementation: AllRpcsHandled<A> extends true ? [implementation?: Partial<ApiImplementation<A>>] : [implementation: ApiImplementation<A>]
  ): ApiClient<A> {
    this.#assertOpen();
    if (!api || typeof api !== 'object' || !(api.rpcInfo instanceof Map)) {
      throw new LightbusError(ErrorCodes.API_DEFINITION_INVALID, 'registerApi() takes an API built with defineApi({...}) or defineApi(ApiClass).');
    }
    if (this.#registered.has(api.name)) {
      throw new LightbusError(ErrorCodes.API_DEFINITION_INVALID, `The API "${api.name}" is already registered on this bus.`);
    }
    const given = (implementation[0] ?? {}) as Registration['implementation'];
    const impl: Registration['implementation'] = {};
    for (const info of new Set(api.rpcInfo.values())) {
      const handler = given[info.member] ?? (api.rpcs[info.member] as { handler?: Registration['implementation'][string] }).handler;
      if (typeof handler === 'function') impl[info.member] = handler.bind(given);
      else {
        throw new LightbusError(
          ErrorCodes.API_DEFINITION_INVALID,
          `registerApi(${api.name}): the implementation has no method "${info.member}" for RPC ${api.name}.${info.wireName}(). Add it.`,
        );
      }
    }
    this.#definitions.set(api.name, api);
    this.#registered.set(api.name, { api, implementation: impl });
    this.#published = undefined;
    this.#publishedDone = false;
    if (this.#state === 'running' && this.#startOptions.rpcs) {
      this.logger.warn(`API ${api.name} was registered after the worker started; restart the worker to serve its RPCs.`);
    }
    return this.client(api);
  }

  /** A typed client of any API definition (whether or not it was passed to createBus). */
  client<A extends AnyApi>(api: A): ApiClient<A> {
    if (!this.#definitions.has(api.name)) this.#definitions.set(api.name, api);
    return this.#pathProxy(api.name.split('.')) as ApiClient<A>;
  }

  /** Untyped access to an API by name (for APIs known only from the bus, or dotted names). */
  api(name: string): UntypedApiClient {
    return {
      name,
      call: (procedure, params, options) => this.call(name, procedure, params, options),
      fire: (event, params, options) => this.fire(name, event, params, options),
      listen: (event, handler, options) =>
        this.listen(
          (typeof event === 'string' ? [event] : event).map((e) => ({ api: name, event: e })),
          handler,
          options,
        ),
    };
  }

  /** The names of the APIs this process registered. */
  get registeredApis(): string[] {
    return [...this.#registered.keys()];
  }

  /** The API definitions this process knows. */
  get knownApis(): AnyApi[] {
    return [...this.#definitions.values()];
  }

  /** Runs `hook` when the worker starts, before listeners begin (set up listeners here). */
  onStart(hook: (bus: Bus<Apis>) => unknown): void {
    this.#startHooks.push(hook);
  }

  /** Runs `hook` when the worker stops, after in-flight work has finished. */
  onStop(hook: (bus: Bus<Apis>) => unknown): void {
    this.#stopHooks.push(hook);
  }

  /** Runs `fn` every `seconds` while the worker runs with tasks enabled. Runs never overlap. */
  every(seconds: number, fn: () => unknown, options: TaskOptions = {}): void {
    if (!(seconds > 0)) throw new LightbusError(ErrorCodes.LISTENER_INVALID, `every(${seconds}): the interval must be a positive number of seconds.`);
    this.#tasks.push({ name: options.name ?? (fn.name || `task${this.#tasks.length + 1}`), intervalMs: seconds * 1000, fn, runImmediately: options.runImmediately ?? false });
  }

  // -------------------------------------------------------------------------------------------
  // RPC calls

  /** Calls an RPC by API and procedure name and waits for its result. */
  async call(apiName: string, procedure: string, params: Record<string, unknown> = {}, options: CallOptions = {}): Promise<unknown> {
    this.#assertOpen();
    const apiConfig = this.apiConfig(apiName);
    const def = this.#definitions.get(apiName);
    const schema = def ? def.schema : await this.#remoteSchema(apiName);
    const info = def?.rpcInfo.get(procedure);
    const procedureName = info?.wireName ?? this.#wireName(schema?.rpcs, procedure);
    const rpcSchema = schema?.rpcs[procedureName];
    const label = `RPC ${apiName}.${procedureName}()`;
    if (schema && !rpcSchema) {
      throw new LightbusError(ErrorCodes.MEMBER_UNKNOWN, `${label} does not exist: the API "${apiName}" has no RPC "${procedureName}". Known RPCs: ${Object.keys(schema.rpcs).join(', ') || '(none)'}.`, {
        details: { apiName, procedureName },
      });
    }
    if (!schema && apiConfig.strictValidation) throw this.#unknownApi(apiName);
    const kwargs = toJson(params, '$') as Kwargs;
    if (apiConfig.validateOutgoing && rpcSchema) {
      this.#validator.validate(rpcSchema.parameters, kwargs, `parameters for ${label}`, { apiName, procedureName });
    }
    const timeoutMs = options.timeout !== undefined ? options.timeout * 1000 : info?.timeout !== undefined ? info.timeout * 1000 : apiConfig.rpcTimeoutMs;
    this.#checkSize(kwargs, apiConfig, label);
    const id = newMessageId();
    const deadline = Date.now() + timeoutMs;
    // The deadline holds whatever the transport does: a broker that stops answering (paused, or
    // a half-open connection) must not keep the caller waiting past it. The guard fires a little
    // after the deadline, so a transport that times out by itself settles first and is cancelled
    // only once its wait is over, as usual. One guard around the whole sequence (not one per
    // step), settling the same promise as the steps: whichever comes first wins (no race of two
    // promises: this is the hot path of every call).
    let abandoned = false;
    /** Cancels the pending result once (set as soon as there is one). */
    let cancelPending: (() => Promise<void>) | undefined;
    const steps = async (): Promise<ResultMessage> => {
      // After the first call both are built: no await for them.
      let rpcTransport = this.#built(apiName, 'rpc');
      let resultTransport = this.#built(apiName, 'result');
      if (!rpcTransport || !resultTransport) [rpcTransport, resultTransport] = await Promise.all([this.transport(apiName, 'rpc'), this.transport(apiName, 'result')]);
      if (abandoned) throw new TimeoutError(`${label}: the transport did not finish the call before its deadline.`);
      const pending: PendingResult = await resultTransport.prepare({ id, apiName, procedureName });
      let cancelling: Promise<void> | undefined;
      cancelPending = () => (cancelling ??= pending.cancel().catch(() => undefined));
      try {
        if (abandoned) throw new TimeoutError(`${label}: the transport did not finish the call before its deadline.`);
        await rpcTransport.call({ id, apiName, procedureName, kwargs, returnPath: pending.returnPath, deadline }, { timeoutMs });
        const waitOptions: { timeoutMs: number; signal?: AbortSignal } = { timeoutMs: Math.max(1, deadline - Date.now()) };
        if (options.signal) waitOptions.signal = options.signal;
        return await pending.wait(waitOptions);
      } finally {
        await cancelPending();
      }
    };
    let result: ResultMessage;
    try {
      result = await new Promise<ResultMessage>((resolve, reject) => {
        const guardTimer = setTimeout(() => {
          abandoned = true;
          // The steps go on in the background: free what the result transport set up at once.
          void cancelPending?.();
          reject(new TimeoutError(`${label}: the transport did not finish the call before its deadline.`));
        }, timeoutMs + DEADLINE_GRACE_MS);
        // Once abandoned at the deadline, a late outcome settles nothing (and a late failure is
        // of no interest).
        steps().then(
          (value) => {
            clearTimeout(guardTimer);
            resolve(value);
          },
          (error: Error) => {
            clearTimeout(guardTimer);
            reject(error);
          },
        );
      });
    } catch (error) {
      if (LightbusError.isInstance(error) && error.code === ErrorCodes.RPC_TIMEOUT) {
        throw new TimeoutError(
          `${label} got no result within ${timeoutMs} ms. Is a worker serving the "${apiName}" API running (\`lightbus run\` in the service that registers it)? If the procedure is slow, raise rpc_timeout or pass { timeout }.`,
          { cause: error, details: { apiName, procedureName, timeoutMs, id } },
        );
      }
      throw error;
    }
    if (result.error) {
      throw new RemoteError(`${label} failed in the serving process: ${String(result.result)}`, String(result.result), result.trace, {
        details: { apiName, procedureName, id },
      });
    }
    if (apiConfig.validateIncoming && rpcSchema) {
      this.#validator.validate(rpcSchema.response, result.result, `result of ${label}`, { apiName, procedureName });
    }
    return info ? castFromJson(result.result, info.castResponse) : result.result;
  }

  // -------------------------------------------------------------------------------------------
  // Events

  /** Fires an event of an API this process registered. */
  async fire(apiName: string, event: string, params: Record<string, unknown> = {}, options: FireOptions = {}): Promise<void> {
    this.#assertOpen();
    const registration = this.#registered.get(apiName);
    if (!registration) {
      throw new LightbusError(
        ErrorCodes.NOT_AUTHORITATIVE,
        `Cannot fire ${apiName}.${event}: this process has not registered the "${apiName}" API. Only the API's authoritative service fires its events: call bus.registerApi(${apiName}Api, implementation) in this process, or fire it from the service that owns "${apiName}".`,
        { details: { apiName, eventName: event } },
      );
    }
    const { api } = registration;
    const info = api.eventInfo.get(event);
    if (!info) {
      throw new LightbusError(
        ErrorCodes.MEMBER_UNKNOWN,
        `The API "${apiName}" has no event "${event}". Known events: ${[...new Set([...api.eventInfo.values()].map((i) => i.wireName))].join(', ') || '(none)'}.`,
        { details: { apiName, eventName: event } },
      );
    }
    const apiConfig = this.apiConfig(apiName);
    const kwargs = toJson(params, '$') as Kwargs;
    if (apiConfig.validateOutgoing) {
      this.#validator.validate(info.parametersSchema, kwargs, `parameters for event ${apiName}.${info.wireName}`, { apiName, eventName: info.wireName });
    }
    this.#checkSize(kwargs, apiConfig, `event ${apiName}.${info.wireName}`);
    // After the first fire both are known: no await (and no extra promise) on the hot path.
    const transport = this.#built(apiName, 'event') ?? (await this.transport(apiName, 'event'));
    if (!this.#publishedDone) await this.#ensurePublished();
    const message: EventMessage = { id: newMessageId(), apiName, eventName: info.wireName, version: api.version, kwargs };
    return transport.send(message, options.timeout !== undefined ? { timeoutMs: options.timeout * 1000 } : NO_SEND_OPTIONS);
  }

  /**
   * Listens to one or more events with one handler. The listener runs while the bus is started
   * (`lightbus run`, or {@link start}); registering it on a started bus starts it at once.
   */
  listen<const Refs extends readonly EventRef[]>(
    events: Refs,
    handler: EventHandler<Refs[number] extends { api: string } ? Record<string, unknown> : EventClientParams<Refs[number]>>,
    options: ListenOptions,
  ): Listener {
    this.#assertOpen();
    const listenerName = options?.listenerName;
    if (typeof listenerName !== 'string' || !/^[A-Za-z0-9_.:-]+$/.test(listenerName)) {
      throw new LightbusError(
        ErrorCodes.LISTENER_INVALID,
        `listen() needs { listenerName: "..." } (letters, digits, _ . : -). It names the listener group ({service}-{listenerName}), so a restarted process continues where it stopped.`,
      );
    }
    if (this.#listeners.some((l) => l.listenerName === listenerName && !l.stopped)) {
      throw new LightbusError(ErrorCodes.LISTENER_INVALID, `A listener named "${listenerName}" already exists on this bus. Give each listener its own name.`);
    }
    if (typeof handler !== 'function') throw new LightbusError(ErrorCodes.LISTENER_INVALID, `listen("${listenerName}"): the handler must be a function.`);
    const selectors = events.map((ref) => this.#selector(ref));
    if (selectors.length === 0) throw new LightbusError(ErrorCodes.LISTENER_INVALID, `listen("${listenerName}"): name at least one event.`);
    const registration: ListenerRegistration = {
      listenerName,
      selectors,
      handler: handler as EventHandler<Record<string, unknown>>,
      options,
      controller: undefined,
      loops: [],
      stopped: false,
    };
    this.#listeners.push(registration);
    if (this.#state === 'running' && this.#startOptions.events) void this.#startListener(registration);
    return {
      listenerName,
      stop: async () => {
        registration.stopped = true;
        registration.controller?.abort();
        await Promise.allSettled(registration.loops);
        const i = this.#listeners.indexOf(registration);
        if (i >= 0) this.#listeners.splice(i, 1);
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Schemas

  /** Loads every schema published on the bus (from all schema transports in use). */
  async loadSchemas(): Promise<Record<string, ApiSchema>> {
    const selections = new Map<string, Promise<TransportByRole['schema']>>();
    for (const name of ['default', ...Object.keys(this.config.apis ?? {}), ...this.#definitions.keys()]) {
      const selection = this.apiConfig(name).transports.schema;
      selections.set(JSON.stringify(Object.keys(selection)) + JSON.stringify(Object.values(selection)), this.transport(name, 'schema'));
    }
    const loaded: Record<string, ApiSchema> = {};
    for (const transport of new Set(await Promise.all(selections.values()))) Object.assign(loaded, await transport.load());
    this.#remoteSchemas = loaded;
    this.#remoteLoadedAt = Date.now();
    return loaded;
  }

  /** The schema document of every API known here: definitions first, then those from the bus. */
  async schemas(options: { load?: boolean } = {}): Promise<Record<string, ApiSchema>> {
    if (options.load ?? true) await this.loadSchemas();
    const out: Record<string, ApiSchema> = { ...this.#remoteSchemas };
    for (const [name, api] of this.#definitions) out[name] = api.schema;
    return out;
  }

  /** Publishes the schemas of registered APIs now. */
  async publishSchemas(): Promise<void> {
    const ttl = schemaTtl(this.config);
    await Promise.all(
      [...this.#registered.values()].map(async ({ api }) => {
        const transport = await this.transport(api.name, 'schema');
        await transport.store(api.name, api.schema, ttl);
      }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Worker runtime

  /** True while started. */
  get running(): boolean {
    return this.#state === 'running';
  }

  /**
   * Starts the worker: runs `onStart` hooks, publishes schemas, serves the RPCs of registered
   * APIs, runs listeners and scheduled tasks. `lightbus run` calls this.
   */
  async start(options: StartOptions = {}): Promise<void> {
    this.#assertOpen();
    if (this.#state !== 'idle') throw new LightbusError(ErrorCodes.CLOSED, `The bus is ${this.#state}; start() can be called once per stop().`);
    this.#state = 'starting';
    this.#startOptions = { rpcs: options.rpcs ?? true, events: options.events ?? true, tasks: options.tasks ?? true };
    this.#workerController = new AbortController();
    const signal = this.#workerController.signal;
    try {
      for (const hook of this.#startHooks) await hook(this.#bus);
      await this.publishSchemas();
      this.#published = Promise.resolve();
      this.#publishedDone = true;
      // Open every transport the worker will use now, so a broken config or an unreachable
      // broker fails start() instead of a background loop.
      const apis = new Set([...this.#registered.keys(), ...this.#listeners.flatMap((l) => l.selectors.map((s) => s.apiName))]);
      await Promise.all(
        [...apis].flatMap((api) => {
          const roles: TransportRole[] = ['schema'];
          if (this.#registered.has(api) && this.#startOptions.rpcs) roles.push('rpc', 'result');
          if (this.#startOptions.events && this.#listeners.some((l) => l.selectors.some((s) => s.apiName === api))) roles.push('event');
          return roles.map((role) => this.transport(api, role));
        }),
      );
    } catch (error) {
      this.#state = 'idle';
      throw error;
    }
    this.#state = 'running';
    this.#workerLoops.push(this.#schemaRefreshLoop(signal));
    if (this.#startOptions.rpcs) this.#startRpcServing(signal);
    const ready: Array<Promise<void>> = [];
    if (this.#startOptions.events) for (const listener of this.#listeners) ready.push(...this.#startListener(listener));
    if (this.#startOptions.tasks) for (const task of this.#tasks) this.#workerLoops.push(this.#taskLoop(task, signal));
    // Return once every listener is subscribed on its broker: an event fired after start()
    // resolves reaches even a group created by this start.
    if (ready.length > 0 && !(await settleWithin(Promise.all(ready), LISTENER_READY_TIMEOUT_MS))) {
      this.logger.warn(`Some listeners were not subscribed after ${LISTENER_READY_TIMEOUT_MS / 1000} s (broker slow or unreachable?); start() returns and they keep trying. Events fired before a new listener group exists are not delivered to it.`);
    }
  }

  /**
   * Stops the worker gracefully: takes no new work, lets in-flight handlers finish within
   * `timeoutMs` (unfinished events go back to their group), then runs `onStop` hooks.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    this.#state = 'stopping';
    const timeoutMs = options.timeoutMs ?? 10_000;
    this.#workerController?.abort();
    for (const listener of this.#listeners) listener.controller?.abort();
    const loops = [...this.#workerLoops, ...this.#listeners.flatMap((l) => l.loops)];
    const deadline = Date.now() + timeoutMs;
    await settleWithin(Promise.allSettled(loops), timeoutMs);
    const finished = await this.#drain(Math.max(0, deadline - Date.now()));
    if (!finished) {
      this.logger.warn(`Shutdown: ${this.#inFlight.size + this.#handling} handler(s) still running after ${timeoutMs} ms; their events will be redelivered.`, {
        code: ErrorCodes.SHUTDOWN_TIMEOUT,
      });
    }
    for (const listener of this.#listeners) listener.loops = [];
    this.#workerLoops = [];
    for (const hook of this.#stopHooks) {
      try {
        await hook(this.#bus);
      } catch (error) {
        this.logger.error(`An onStop hook failed: ${describeError(error)}`);
      }
    }
    this.#state = 'idle';
  }

  /** Stops the worker (if started) and closes every transport. The bus cannot be used afterwards. */
  async close(options: StopOptions = {}): Promise<void> {
    if (this.#state === 'closed') return;
    await this.stop(options);
    await this.#drain(options.timeoutMs ?? 10_000);
    this.#state = 'closed';
    this.#transportByApi.clear();
    this.#builtTransports.clear();
    const errors = await this.#transports.closeAll();
    for (const error of errors) this.logger.warn(`Closing a transport failed: ${describeError(error)}`);
  }

  /** Waits for in-flight handlers (started by the worker, or fire-and-forget work). */
  async #drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inFlight.size > 0 || this.#handling > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (this.#inFlight.size > 0) await settleWithin(Promise.allSettled([...this.#inFlight]), left);
      else await this.#handlingIdle.wait(undefined, left);
    }
    return true;
  }

  /** A summary of what this process serves and listens to, and over which transports. */
  describe(): BusDescription {
    const apis = new Set(['default', ...this.#registered.keys(), ...this.#listeners.flatMap((l) => l.selectors.map((s) => s.apiName))]);
    const transports: BusDescription['transports'] = {};
    for (const api of apis) {
      const t = this.apiConfig(api).transports;
      transports[api] = {
        rpc: Object.keys(t.rpc)[0] ?? '?',
        result: Object.keys(t.result)[0] ?? '?',
        event: Object.keys(t.event)[0] ?? '?',
        schema: Object.keys(t.schema)[0] ?? '?',
      };
    }
    return {
      serviceName: this.serviceName,
      processName: this.processName,
      registeredApis: this.registeredApis,
      listeners: this.#listeners.map((l) => ({ listenerName: l.listenerName, events: l.selectors.map((s) => `${s.apiName}.${s.eventName}`) })),
      tasks: this.#tasks.map((t) => ({ name: t.name, intervalSeconds: t.intervalMs / 1000 })),
      transports,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing shared with the CLI

  /** The options in force for one API (its own, then `default`, then built-in defaults). */
  apiConfig(apiName: string): ResolvedApiConfig {
    let resolved = this.#apiConfigs.get(apiName);
    if (!resolved) {
      resolved = resolveApiConfig(this.config, apiName);
      this.#apiConfigs.set(apiName, resolved);
    }
    return resolved;
  }

  /** The transport serving `role` for `apiName` when it is already built (read without an await on hot paths). */
  #built<R extends TransportRole>(apiName: string, role: R): TransportByRole[R] | undefined {
    return this.#builtTransports.get(apiName)?.[role];
  }

  /** The transport serving `role` for `apiName`, built on first use. */
  transport<R extends TransportRole>(apiName: string, role: R): Promise<TransportByRole[R]> {
    const key = `${role}\u0000${apiName}`;
    let transport = this.#transportByApi.get(key) as Promise<TransportByRole[R]> | undefined;
    if (!transport) {
      transport = this.#transports.get(role, this.apiConfig(apiName).transports[role]);
      this.#transportByApi.set(key, transport);
      // A failed build is not cached: the next use tries again.
      transport.then(
        (built) => {
          if (this.#transportByApi.get(key) !== transport) return;
          let roles = this.#builtTransports.get(apiName);
          if (!roles) this.#builtTransports.set(apiName, (roles = {}));
          roles[role] = built;
        },
        () => this.#transportByApi.delete(key),
      );
    }
    return transport;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  #assertOpen(): void {
    if (this.#state === 'closed') throw new LightbusError(ErrorCodes.CLOSED, 'This bus is closed. Create a new one with createBus().');
  }

  #unknownApi(apiName: string): LightbusError {
    return new LightbusError(
      ErrorCodes.API_UNKNOWN,
      `The API "${apiName}" is unknown: it is not defined in this process and no schema for it is on the bus. Check the name, start its service, or turn strict_validation off.`,
      { details: { apiName } },
    );
  }

  #checkSize(kwargs: Kwargs, apiConfig: ResolvedApiConfig, label: string): void {
    // Cheap bound first: serialize for the exact size only when the message may be too large.
    if (jsonSizeUpperBound(kwargs, apiConfig.maxMessageBytes) <= apiConfig.maxMessageBytes) return;
    const size = Buffer.byteLength(JSON.stringify(kwargs));
    if (size > apiConfig.maxMessageBytes) {
      throw new LightbusError(
        ErrorCodes.MESSAGE_TOO_LARGE,
        `The parameters for ${label} are ${size} bytes, over the limit of ${apiConfig.maxMessageBytes}. Send a reference (an id, a URL) instead, or raise max_message_bytes.`,
        { details: { size, limit: apiConfig.maxMessageBytes } },
      );
    }
  }

  #wireName(members: Record<string, unknown> | undefined, name: string): string {
    if (!members || name in members) return name;
    const snake = toSnakeCase(name);
    return snake in members ? snake : name;
  }

  async #remoteSchema(apiName: string): Promise<ApiSchema | undefined> {
    const cached = this.#remoteSchemas[apiName];
    if (cached) return cached;
    if (Date.now() - this.#remoteLoadedAt < 2000) return undefined;
    this.#remoteLoading ??= this.loadSchemas()
      .then(() => undefined)
      .catch((error: unknown) => {
        this.#remoteLoadedAt = Date.now();
        this.logger.warn(`Could not load schemas from the bus: ${describeError(error)}`);
      })
      .finally(() => {
        this.#remoteLoading = undefined;
      });
    await this.#remoteLoading;
    return this.#remoteSchemas[apiName];
  }

  async #ensurePublished(): Promise<void> {
    if (!this.#published) {
      const publishing: Promise<void> = this.publishSchemas().then(
        () => {
          // Still the current attempt (no registerApi() since): nothing left to publish.
          if (this.#published === publishing) this.#publishedDone = true;
        },
        (error: unknown) => {
          this.#published = undefined;
          this.logger.warn(`Could not publish schemas: ${describeError(error)}`);
        },
      );
      this.#published = publishing;
    }
    await this.#published;
  }

  #selector(ref: EventRef): EventSelector {
    const path = (ref as unknown as Record<symbol, string[] | undefined>)[PATH];
    let apiName: string;
    let event: string;
    if (path) {
      apiName = path.slice(0, -1).join('.');
      event = path[path.length - 1]!;
    } else if (ref && typeof ref === 'object' && 'api' in ref && 'event' in ref) {
      apiName = ref.api;
      event = ref.event;
    } else {
      throw new LightbusError(ErrorCodes.LISTENER_INVALID, 'listen([...]) takes events such as bus.auth.userRegistered or { api: "auth", event: "user_registered" }.');
    }
    const def = this.#definitions.get(apiName);
    const info = def?.eventInfo.get(event);
    if (def && !info) {
      throw new LightbusError(ErrorCodes.MEMBER_UNKNOWN, `The API "${apiName}" has no event "${event}". Known events: ${[...new Set([...def.eventInfo.values()].map((i) => i.wireName))].join(', ') || '(none)'}.`);
    }
    return { apiName, eventName: info?.wireName ?? toSnakeCase(event) };
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise);
    void promise.finally(() => this.#inFlight.delete(promise)).catch(() => undefined);
    return promise;
  }

  /** Starts a listener's consume loops; resolves (one promise per loop) once each is subscribed. */
  #startListener(listener: ListenerRegistration): Array<Promise<void>> {
    if (listener.stopped) return [];
    listener.controller = new AbortController();
    const signal = this.#workerController ? AbortSignal.any([listener.controller.signal, this.#workerController.signal]) : listener.controller.signal;
    // One consume loop per event transport (APIs may use different ones).
    const byTransport = new Map<string, EventSelector[]>();
    for (const selector of listener.selectors) {
      const key = JSON.stringify(this.apiConfig(selector.apiName).transports.event);
      byTransport.set(key, [...(byTransport.get(key) ?? []), selector]);
    }
    const ready: Array<Promise<void>> = [];
    for (const selectors of byTransport.values()) {
      let onReady!: () => void;
      ready.push(new Promise<void>((resolve) => (onReady = resolve)));
      const loop = this.#listenLoop(listener, selectors, signal, onReady);
      // Also done when the loop ends (stopped, or failed for good) without being subscribed.
      void loop.then(onReady, onReady);
      listener.loops.push(loop);
    }
    return ready;
  }

  async #listenLoop(listener: ListenerRegistration, selectors: EventSelector[], signal: AbortSignal, onReady: () => void): Promise<void> {
    const first = selectors[0]!;
    const apiConfig = this.apiConfig(first.apiName);
    const concurrency = listener.options.concurrency ?? apiConfig.eventListenerConcurrency;
    const semaphore = new Semaphore(concurrency);
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const transport = await this.transport(first.apiName, 'event');
        const since = listener.options.since instanceof Date ? ({ time: listener.options.since } as StartPosition) : listener.options.since;
        this.logger.info(`Listener ${listener.listenerName} started`, { events: selectors.map((s) => `${s.apiName}.${s.eventName}`) });
        for await (const batch of transport.consume({
          listenerName: listener.listenerName,
          events: selectors,
          signal,
          onReady,
          // Left out when not set, so the transport's own default (e.g. redis `batch_size`) applies.
          ...(listener.options.batchSize === undefined ? {} : { batchSize: listener.options.batchSize }),
          ...(since === undefined ? {} : { since }),
        })) {
          attempt = 0;
          const debug = this.logger.enabled?.('debug') ?? true;
          for (let i = 0; i < batch.length; i++) {
            if (!semaphore.tryAcquire()) await semaphore.acquire();
            if (signal.aborted) {
              semaphore.release();
              await this.#handBack(listener, batch.slice(i));
              break;
            }
            // The slot frees as soon as the handler settles; the acknowledgement completes in the
            // background (counted, so stop() waits for it), letting transports batch acks.
            void this.#handleEvent(listener, batch[i]!, semaphore, debug);
          }
        }
        if (signal.aborted) break;
        throw new LightbusError(ErrorCodes.TRANSPORT_ERROR, 'the event transport ended the consume loop without being asked to stop');
      } catch (error) {
        if (signal.aborted) break;
        await this.#backOff(++attempt, `Listener ${listener.listenerName} lost its transport`, error, signal);
      }
    }
  }

  /**
   * The worker is stopping: events of a batch it will not start go back to their group at once
   * (nack without delay), so another worker takes them now rather than after the transport's
   * acknowledgement timeout. The handler never ran, so nothing is handled twice.
   */
  async #handBack(listener: ListenerRegistration, events: readonly ReceivedEvent[]): Promise<void> {
    if (events.length === 0) return;
    const error = new LightbusError(ErrorCodes.ABORTED, `Listener ${listener.listenerName} stopped before handling this event; it goes back to its group.`);
    const results = await Promise.allSettled(events.map((received) => received.nack({ delayMs: 0, error })));
    const failed = results.filter((r) => r.status === 'rejected').length;
    this.logger.debug(`Listener ${listener.listenerName} stopping: handed ${events.length - failed} unstarted event(s) back to the group`, { failed });
  }

  /** Logs a consume-loop failure and waits before the next attempt (0.5 s doubling, at most 30 s). */
  async #backOff(attempt: number, what: string, error: unknown, signal: AbortSignal): Promise<void> {
    const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt - 1, 6));
    this.logger.error(`${what}: ${describeError(error)}. Retrying in ${delay} ms.`);
    await sleep(delay, signal);
  }

  /**
   * Handles one event: validate, cast, run the handler, settle. Frees its place in `semaphore`
   * once the handler settled (before the acknowledgement's round trip) and never rejects. It is
   * counted in {@link #handling} until settled, so stop() and close() wait for it.
   */
  async #handleEvent(listener: ListenerRegistration, received: ReceivedEvent, semaphore: Semaphore, debug: boolean): Promise<void> {
    // One async function per event (it runs for every event): the slot is given back as soon as
    // the handler settled, the acknowledgement goes on without it.
    this.#handling++;
    let held = true;
    const { message } = received;
    const apiConfig = this.apiConfig(message.apiName);
    try {
      let params: Record<string, unknown> = message.kwargs;
      const def = this.#definitions.get(message.apiName);
      const info: EventInfo | undefined = def?.eventInfo.get(message.eventName);
      const parametersSchema = info?.parametersSchema ?? (await this.#remoteSchema(message.apiName))?.events[message.eventName]?.parameters;
      if (apiConfig.validateIncoming && parametersSchema) {
        this.#validator.validate(parametersSchema, params, `parameters of event ${message.apiName}.${message.eventName} (received)`, { apiName: message.apiName, eventName: message.eventName });
      }
      if (info) params = castFromJson(params, info.castSchema) as Record<string, unknown>;
      const context: EventContext = {
        id: message.id,
        apiName: message.apiName,
        eventName: message.eventName,
        version: message.version,
        position: received.position,
        deliveryCount: received.deliveryCount,
        listenerName: listener.listenerName,
      };
      let failed = false;
      let failure: unknown;
      try {
        if (debug) this.logger.debug(`Listener ${listener.listenerName} handling event ${message.apiName}.${message.eventName}`, { id: message.id, delivery: received.deliveryCount });
        // A handler that returns no promise settles here, without a turn of the microtask queue.
        const handled = listener.handler(params, context);
        if (typeof (handled as PromiseLike<void> | null | undefined)?.then === 'function') await handled;
      } catch (error) {
        failed = true;
        failure = error;
      }
      held = false;
      semaphore.release();
      if (!failed) {
        await received.ack();
        return;
      }
      const label = `event ${message.apiName}.${message.eventName}`;
      const maxDeliveries = listener.options.maxDeliveries ?? apiConfig.maxDeliveries;
      if (received.deliveryCount >= maxDeliveries) {
        this.logger.error(`Listener ${listener.listenerName} failed on ${label} ${received.deliveryCount} time(s); dead-lettering it: ${describeError(failure)}`, {
          id: message.id,
          position: received.position,
        });
        await received.deadLetter(failure);
      } else {
        const delayMs = Math.min(apiConfig.maxRetryDelayMs, apiConfig.retryDelayMs * 2 ** (received.deliveryCount - 1));
        this.logger.warn(`Listener ${listener.listenerName} failed on ${label} (delivery ${received.deliveryCount} of ${maxDeliveries}); retrying in ${delayMs} ms: ${describeError(failure)}`, {
          id: message.id,
        });
        await received.nack({ delayMs, error: failure });
      }
    } catch (error) {
      if (held) {
        held = false;
        semaphore.release();
      }
      const label = `event ${message.apiName}.${message.eventName}`;
      if (error instanceof ValidationError) {
        // A message that does not match the schema will never succeed: dead-letter it at once.
        this.logger.error(`Listener ${listener.listenerName} received an invalid ${label}; dead-lettering it: ${error.message}`, { id: message.id });
        await received.deadLetter(error).catch((e: unknown) => this.logger.error(`Dead-lettering failed: ${describeError(e)}`));
        return;
      }
      this.logger.error(`Listener ${listener.listenerName}: settling ${label} failed: ${describeError(error)}. It will be redelivered.`, { id: message.id });
    } finally {
      if (held) semaphore.release();
      if (--this.#handling === 0) this.#handlingIdle.notify();
    }
  }

  #startRpcServing(signal: AbortSignal): void {
    const byTransport = new Map<string, string[]>();
    for (const apiName of this.#registered.keys()) {
      if (this.#registered.get(apiName)!.api.rpcInfo.size === 0) continue;
      const key = JSON.stringify(this.apiConfig(apiName).transports.rpc);
      byTransport.set(key, [...(byTransport.get(key) ?? []), apiName]);
    }
    for (const apiNames of byTransport.values()) this.#workerLoops.push(this.#rpcLoop(apiNames, signal));
  }

  async #rpcLoop(apiNames: string[], signal: AbortSignal): Promise<void> {
    const concurrency = Math.max(...apiNames.map((a) => this.apiConfig(a).rpcConcurrency));
    const semaphore = new Semaphore(concurrency);
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const transport = await this.transport(apiNames[0]!, 'rpc');
        this.logger.info(`Serving RPCs`, { apis: apiNames });
        for await (const message of transport.consume(apiNames, { signal })) {
          attempt = 0;
          if (!semaphore.tryAcquire()) await semaphore.acquire();
          void this.#serveCounted(message, semaphore);
          if (signal.aborted) break;
        }
        if (signal.aborted) break;
        throw new LightbusError(ErrorCodes.TRANSPORT_ERROR, 'the RPC transport ended the consume loop without being asked to stop');
      } catch (error) {
        if (signal.aborted) break;
        await this.#backOff(++attempt, `Serving RPCs for ${apiNames.join(', ')} failed`, error, signal);
      }
    }
  }

  /**
   * Serves one call holding a slot of `semaphore`, counted in {@link #handling} until settled
   * (stop() and close() wait for it). One async function per call: no tracked promise.
   */
  async #serveCounted(message: RpcMessage, semaphore: Semaphore): Promise<void> {
    this.#handling++;
    try {
      await this.#serve(message);
    } catch (error) {
      this.logger.error(`Serving RPC ${message.apiName}.${message.procedureName}() failed: ${describeError(error)}`, { id: message.id });
    } finally {
      semaphore.release();
      if (--this.#handling === 0) this.#handlingIdle.notify();
    }
  }

  async #serve(message: RpcMessage): Promise<void> {
    const label = `RPC ${message.apiName}.${message.procedureName}()`;
    if (message.deadline !== undefined && message.deadline < Date.now()) {
      this.logger.debug(`${label} arrived after its deadline; dropped`, { id: message.id });
      return;
    }
    let result: ResultMessage;
    const registration = this.#registered.get(message.apiName);
    const info: RpcInfo | undefined = registration?.api.rpcInfo.get(message.procedureName);
    try {
      if (!registration) throw new LightbusError(ErrorCodes.API_UNKNOWN, `This worker does not serve the API "${message.apiName}".`);
      if (!info || info.wireName !== message.procedureName) {
        throw new LightbusError(ErrorCodes.MEMBER_UNKNOWN, `The API "${message.apiName}" has no RPC "${message.procedureName}".`);
      }
      const apiConfig = this.apiConfig(message.apiName);
      let params: Record<string, unknown> = message.kwargs;
      if (apiConfig.validateIncoming) this.#validator.validate(info.parametersSchema, params, `parameters for ${label}`, { apiName: message.apiName });
      params = castFromJson(params, info.castSchema) as Record<string, unknown>;
      const context: RpcContext = { id: message.id, apiName: message.apiName, procedureName: message.procedureName, deadline: message.deadline };
      this.logger.debug(`Executing ${label}`, { id: message.id });
      const value = await registration.implementation[info.member]!(params, context);
      const json = toJson(value, '$');
      if (apiConfig.validateOutgoing) this.#validator.validate(info.responseSchema, json, `result of ${label}`, { apiName: message.apiName });
      result = { id: newMessageId(), rpcMessageId: message.id, error: false, result: json };
    } catch (error) {
      if (!(LightbusError.isInstance(error) && error.code === ErrorCodes.VALIDATION_FAILED)) {
        this.logger.error(`${label} threw: ${describeError(error)}`, { id: message.id });
      } else this.logger.warn(`${label} rejected: ${(error as Error).message}`, { id: message.id });
      result = {
        id: newMessageId(),
        rpcMessageId: message.id,
        error: true,
        result: printableError(error),
        trace: error instanceof Error && error.stack ? error.stack : describeError(error),
      };
    }
    if (message.deadline !== undefined && message.deadline < Date.now()) {
      this.logger.warn(`${label} finished after its deadline; the caller has stopped waiting, so the result is dropped`, { id: message.id });
      return;
    }
    try {
      // Usually the API's own result transport, already built: no await to find it.
      const own = this.#built(message.apiName, 'result');
      const transport = own && writesTo(own, message.returnPath) ? own : await this.#resultTransportFor(message);
      await transport.send(message.returnPath, result, { rpc: message });
    } catch (error) {
      this.logger.error(`Could not send the result of ${label} to ${message.returnPath}: ${describeError(error)}`, { id: message.id });
    }
  }

  async #resultTransportFor(message: RpcMessage): Promise<ResultTransport> {
    for (const name of [message.apiName, 'default', ...Object.keys(this.config.apis ?? {})]) {
      const candidate = await this.transport(name, 'result');
      if (writesTo(candidate, message.returnPath)) return candidate;
    }
    const scheme = message.returnPath.split('://')[0] ?? '';
    throw new LightbusError(
      ErrorCodes.RETURN_PATH_UNSUPPORTED,
      `No result transport here can write to "${scheme}://" return paths. Configure a result_transport of that kind for API ${message.apiName}.`,
    );
  }

  async #schemaRefreshLoop(signal: AbortSignal): Promise<void> {
    const intervalMs = schemaTtl(this.config) * 800;
    while (!signal.aborted) {
      await sleep(intervalMs, signal);
      if (signal.aborted) break;
      try {
        await this.publishSchemas();
      } catch (error) {
        this.logger.warn(`Refreshing schemas failed: ${describeError(error)}`);
      }
    }
  }

  async #taskLoop(task: TaskRegistration, signal: AbortSignal): Promise<void> {
    if (!task.runImmediately) await sleep(task.intervalMs, signal);
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.#track(Promise.resolve().then(() => task.fn()));
      } catch (error) {
        this.logger.error(`Scheduled task ${task.name} failed: ${describeError(error)}`);
      }
      await sleep(Math.max(0, task.intervalMs - (Date.now() - started)), signal);
    }
  }

  /** @internal The typed-client proxy for an API path (used by {@link createBus}). */
  [PATH_PROXY](path: string[]): unknown {
    return this.#pathProxy(path);
  }

  /** @internal Remembers the proxy that createBus hands out, so hooks receive it. */
  [SELF](bus: Bus<Apis>): void {
    this.#self = bus;
  }

  get #bus(): Bus<Apis> {
    return this.#self ?? (this as unknown as Bus<Apis>);
  }

  #pathProxy(path: string[]): unknown {
    // `bus.auth.userRegistered.fire(...)` walks the same paths again and again: reuse them.
    const key = path.join('\u0000');
    const cached = this.#pathProxies.get(key);
    if (cached) return cached;
    const proxy = this.#newPathProxy(path);
    if (this.#pathProxies.size < 10_000) this.#pathProxies.set(key, proxy);
    return proxy;
  }

  #newPathProxy(path: string[]): unknown {
    const target = function lightbusPath() {};
    const parent = path.slice(0, -1).join('.');
    const member = path[path.length - 1]!;
    // Built once per path: `client.tick.fire(...)` in a loop allocates nothing here.
    let fire: ((params?: Record<string, unknown>, options?: FireOptions) => Promise<void>) | undefined;
    let children: Map<string, unknown> | undefined;
    return new Proxy(target, {
      get: (_t, prop) => {
        if (prop === PATH) return path;
        if (typeof prop === 'symbol' || RESERVED.has(prop)) return undefined;
        if (prop === 'fire') {
          return (fire ??= (params?: Record<string, unknown>, options?: FireOptions) => this.fire(parent, member, params, options));
        }
        if (prop === 'listen') {
          return (handler: EventHandler<Record<string, unknown>>, options: ListenOptions) => this.listen([{ api: parent, event: member }], handler, options);
        }
        let child = children?.get(prop);
        if (child === undefined) {
          child = this.#pathProxy([...path, prop]);
          if ((children ??= new Map()).size < 1000) children.set(prop, child);
        }
        return child;
      },
      apply: (_t, _this, args: unknown[]) => {
        if (path.length < 2) {
          return Promise.reject(new LightbusError(ErrorCodes.MEMBER_UNKNOWN, `bus.${path.join('.')}() is not an RPC: call bus.<api>.<rpc>(params).`));
        }
        return this.call(path.slice(0, -1).join('.'), path[path.length - 1]!, args[0] as Record<string, unknown>, args[1] as CallOptions);
      },
    });
  }
}

/** A Python-style printable form of an error, as sent in error results: `Error('boom')`. */
export function printableError(error: unknown): string {
  if (error instanceof Error) {
    const code = LightbusError.isInstance(error) ? `[${error.code}] ` : '';
    return `${error.name}(${JSON.stringify(code + error.message).replace(/^"|"$/g, "'")})`;
  }
  return describeError(error);
}

/** The bus: {@link BusClient} methods plus typed clients for the known APIs. */
export type Bus<Apis extends readonly AnyApi[] = []> = BusClient<Apis> & ApiTree<Apis>;

/**
 * Creates a bus. Synchronous and cheap: transports connect on first use.
 *
 * @example
 * ```ts
 * const bus = createBus({ apis: [authApi] });
 * const ok = await bus.auth.checkPassword({ username: 'admin', password: 'secret' });
 * ```
 */
export function createBus<const Apis extends readonly AnyApi[] = []>(options: CreateBusOptions<Apis> = {}): Bus<Apis> {
  const client = new BusClient<Apis>(options);
  const bus = new Proxy(client, {
    get(target, prop) {
      if (typeof prop === 'symbol' || prop in target || RESERVED.has(prop)) {
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return target[PATH_PROXY]([prop]);
    },
  }) as Bus<Apis>;
  client[SELF](bus);
  return bus;
}

/** The same as {@link createBus}, for those who write `lightbus.create()` as in Python. */
export const lightbus = { create: createBus };

/** True when `transport` writes to return paths of the scheme `returnPath` starts with. */
function writesTo(transport: ResultTransport, returnPath: string): boolean {
  for (const scheme of transport.capabilities.schemes) {
    if (returnPath.startsWith(scheme) && returnPath.startsWith('://', scheme.length)) return true;
  }
  return false;
}
