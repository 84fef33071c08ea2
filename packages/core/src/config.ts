/**
 * Configuration: which transport serves each of the four roles (rpc, result, event, schema) for
 * each API, with a `default` fallback, and the bus-level options. Read from an object, a YAML or
 * JSON file, and the environment. Keys are snake_case, as in Python Lightbus, so one file can
 * serve services in both languages.
 *
 * @example
 * ```yaml
 * service_name: auth_service
 * process_name: auth_worker_1
 * bus:
 *   schema:
 *     ttl: 60
 *     transport: { redis: { url: redis://127.0.0.1:6379 } }
 * apis:
 *   default:
 *     rpc_timeout: 5
 *     rpc_transport: { redis: { url: redis://127.0.0.1:6379 } }
 *     result_transport: { redis: { url: redis://127.0.0.1:6379 } }
 *     event_transport: { redis: { url: redis://127.0.0.1:6379 } }
 *   payments:
 *     rpc_transport: { nats: { servers: nats://127.0.0.1:4222 } }
 * ```
 *
 * @module
 */
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, extname, join, resolve, basename } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ConfigurationError, ErrorCodes } from './errors.js';
import { quickCheck } from './internal/quick-check.js';
import type { TransportPlugin, TransportRole } from './transports/types.js';

/** Picks a transport plugin and its options: `{ redis: { url: 'redis://...' } }` (one key). */
export type TransportSelection = Record<string, object>;

/** Validation switches. */
export interface ValidateConfig {
  /** Validate messages this process receives. Default true. */
  incoming?: boolean;
  /** Validate messages this process sends. Default true. */
  outgoing?: boolean;
}

/** Options of one API (or of `default`, the fallback for every API). */
export interface ApiConfig {
  /** Transport that carries RPC calls. Default: memory. */
  rpc_transport?: TransportSelection;
  /** Transport that carries RPC results. Default: memory. */
  result_transport?: TransportSelection;
  /** Transport that carries events. Default: memory. */
  event_transport?: TransportSelection;
  /** Transport that shares this API's schema. Default: `bus.schema.transport`. */
  schema_transport?: TransportSelection;
  /** Seconds a caller waits for an RPC result (and the call's time to live). Default 5. */
  rpc_timeout?: number;
  /** Validate messages against the API schema: `true`, `false`, or per direction. Default true. */
  validate?: boolean | ValidateConfig;
  /** Refuse to send to an API whose schema is unknown (not defined here, not on the bus). Default false. */
  strict_validation?: boolean;
  /** Handlers of one listener running at once in one process. Default 1 (in order). */
  event_listener_concurrency?: number;
  /** Deliveries of one event before it is dead-lettered. Default 5. */
  max_deliveries?: number;
  /** Seconds before the first retry of a failed handler; doubles each time. Default 1. */
  retry_delay?: number;
  /** Longest retry delay in seconds. Default 60. */
  max_retry_delay?: number;
  /** RPCs of this API served at once by one worker. Default 32. */
  rpc_concurrency?: number;
  /** Largest encoded message accepted or sent, in bytes. Default 1048576 (1 MiB). */
  max_message_bytes?: number;
}

/** Options of the bus as a whole. */
export interface BusSectionConfig {
  /** Schema sharing. */
  schema?: {
    /** Seconds a published schema lives; refreshed every 0.8 × ttl by the worker. Default 60. */
    ttl?: number;
    /** Default schema transport. Default: memory. */
    transport?: TransportSelection;
  };
}

/** The whole configuration, as written in a file or passed as an object. */
export interface LightbusConfig {
  /** The service this process belongs to. Listener groups are `{service_name}-{listener}`, so keep it stable. */
  service_name?: string;
  /** This process's name, unique among the service's running processes. */
  process_name?: string;
  /** Bus-level options. */
  bus?: BusSectionConfig;
  /** Per-API options by API name, with `default` as the fallback. */
  apis?: Record<string, ApiConfig>;
}

/** Options of one API after defaults are applied. */
export interface ResolvedApiConfig {
  /** Transport per role. */
  transports: Record<TransportRole, TransportSelection>;
  /** RPC timeout in ms. */
  rpcTimeoutMs: number;
  /** Validate incoming messages. */
  validateIncoming: boolean;
  /** Validate outgoing messages. */
  validateOutgoing: boolean;
  /** Refuse unknown schemas. */
  strictValidation: boolean;
  /** Listener concurrency. */
  eventListenerConcurrency: number;
  /** Delivery limit. */
  maxDeliveries: number;
  /** First retry delay in ms. */
  retryDelayMs: number;
  /** Longest retry delay in ms. */
  maxRetryDelayMs: number;
  /** RPC concurrency per API in one worker. */
  rpcConcurrency: number;
  /** Message size limit in bytes. */
  maxMessageBytes: number;
}

const MEMORY: TransportSelection = { memory: {} };

const transportSelectionSchema = {
  type: 'object',
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: { type: 'object' },
  description: 'One key: the transport plugin name (redis, nats, amqp, memory); its value: the options.',
};

const apiConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rpc_transport: transportSelectionSchema,
    result_transport: transportSelectionSchema,
    event_transport: transportSelectionSchema,
    schema_transport: transportSelectionSchema,
    rpc_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds a caller waits for a result. Default 5.' },
    validate: {
      description: 'Validate messages against the schema. Default true.',
      oneOf: [
        { type: 'boolean' },
        {
          type: 'object',
          additionalProperties: false,
          properties: { incoming: { type: 'boolean' }, outgoing: { type: 'boolean' } },
        },
      ],
    },
    strict_validation: { type: 'boolean', description: 'Refuse to send to APIs with no known schema. Default false.' },
    event_listener_concurrency: { type: 'integer', minimum: 1, description: 'Handlers of one listener at once. Default 1.' },
    max_deliveries: { type: 'integer', minimum: 1, description: 'Deliveries before dead-lettering. Default 5.' },
    retry_delay: { type: 'number', minimum: 0, description: 'First retry delay in seconds. Default 1.' },
    max_retry_delay: { type: 'number', minimum: 0, description: 'Longest retry delay in seconds. Default 60.' },
    rpc_concurrency: { type: 'integer', minimum: 1, description: 'RPCs served at once per API. Default 32.' },
    max_message_bytes: { type: 'integer', minimum: 1024, description: 'Largest message in bytes. Default 1048576.' },
  },
} as const;

/**
 * The JSON Schema of the configuration. Pass the installed transport plugins to check their
 * options too (the `lightbus dumpconfigschema` command does).
 */
export function configJsonSchema(plugins: readonly TransportPlugin<object>[] = []): Record<string, unknown> {
  const selection =
    plugins.length === 0
      ? transportSelectionSchema
      : {
          ...transportSelectionSchema,
          properties: Object.fromEntries(plugins.map((p) => [p.name, p.optionsSchema ?? { type: 'object' }])),
        };
  const api = {
    ...apiConfigSchema,
    properties: {
      ...apiConfigSchema.properties,
      rpc_transport: selection,
      result_transport: selection,
      event_transport: selection,
      schema_transport: selection,
    },
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Lightbus configuration',
    type: 'object',
    additionalProperties: false,
    properties: {
      service_name: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9_.:-]+$', description: 'Stable service name.' },
      process_name: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9_.:-]+$', description: 'Unique process name.' },
      bus: {
        type: 'object',
        additionalProperties: false,
        properties: {
          schema: {
            type: 'object',
            additionalProperties: false,
            properties: {
              ttl: { type: 'number', exclusiveMinimum: 0, description: 'Seconds a published schema lives. Default 60.' },
              transport: selection,
            },
          },
        },
      },
      apis: {
        type: 'object',
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$' },
        additionalProperties: api,
      },
    },
  };
}

function errorPath(error: ErrorObject): string {
  const base = error.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
  const params = error.params as Record<string, unknown>;
  const extra = (params['additionalProperty'] ?? params['missingProperty']) as string | undefined;
  const path = [base, extra].filter((s) => s !== undefined && s !== '').join('.');
  return path === '' ? '(top level)' : path;
}

function describeConfigError(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      return 'is not a known option (check the spelling; options are snake_case)';
    case 'minProperties':
    case 'maxProperties':
      return 'must name exactly one transport, e.g. { redis: { url: "redis://127.0.0.1:6379" } }';
    case 'type':
      return `must be ${String(params['type'])}`;
    case 'oneOf':
      return 'must be true, false, or { incoming, outgoing }';
    case 'pattern':
      return `must match ${String(params['pattern'])}`;
    case 'propertyNames':
      return 'is not a valid API name (identifiers joined by dots)';
    default:
      return error.message ?? `fails the "${error.keyword}" rule`;
  }
}

/**
 * Checks a configuration object against {@link configJsonSchema}. Throws a
 * {@link ConfigurationError} listing the path of each bad key and what was expected.
 *
 * A small checker that knows the keywords these schemas use accepts a valid configuration
 * without compiling the schema with Ajv (compiling it, with the meta-schema, was most of what a
 * Lightbus worker held in memory at rest beyond its code: ~9 MB of RSS); anything it does not
 * accept outright (an error, or a keyword it does not know, e.g. in a plugin's options schema)
 * goes to Ajv, which decides and writes the report.
 */
export function validateConfig(config: unknown, plugins: readonly TransportPlugin<object>[] = [], source = 'the configuration'): LightbusConfig {
  const schema = configJsonSchema(plugins);
  if (quickCheck(schema, config) === 'valid') return config as LightbusConfig;
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  if (validate(config)) return config as LightbusConfig;
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const error of validate.errors ?? []) {
    const line = `${errorPath(error)}: ${describeConfigError(error)}`;
    if (!seen.has(line)) {
      seen.add(line);
      problems.push(line);
    }
  }
  throw new ConfigurationError(`Invalid ${source}:\n  - ${problems.join('\n  - ')}\nFix these keys (run \`lightbus dumpconfigschema\` for the full schema).`, {
    details: { problems },
  });
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** A path to a YAML or JSON file. Default: `LIGHTBUS_CONFIG` when set. */
  file?: string;
  /** A configuration object (used instead of a file). */
  config?: LightbusConfig;
  /** The environment to read `LIGHTBUS_*` variables from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Installed plugins, to check transport options. */
  plugins?: readonly TransportPlugin<object>[];
}

/**
 * Reads and checks the configuration: from `options.config`, else from `options.file` or
 * `LIGHTBUS_CONFIG`, else an empty config (memory transports). `LIGHTBUS_SERVICE_NAME` and
 * `LIGHTBUS_PROCESS_NAME` override the names.
 */
export function loadConfig(options: LoadConfigOptions = {}): LightbusConfig {
  const env = options.env ?? process.env;
  let config: unknown = options.config ?? {};
  let source = 'configuration object';
  const file = options.config === undefined ? (options.file ?? env['LIGHTBUS_CONFIG']) : undefined;
  if (file !== undefined && file !== '') {
    config = readConfigFile(file);
    source = `configuration file ${file}`;
  }
  if (config === null || config === undefined) config = {};
  const checked = validateConfig(config, options.plugins, source);
  const out: LightbusConfig = { ...checked };
  if (env['LIGHTBUS_SERVICE_NAME']) out.service_name = env['LIGHTBUS_SERVICE_NAME'];
  if (env['LIGHTBUS_PROCESS_NAME']) out.process_name = env['LIGHTBUS_PROCESS_NAME'];
  return out;
}

/** Reads a YAML or JSON config file. */
export function readConfigFile(file: string): unknown {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigurationError(
      `Cannot read the configuration file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}. Check the path (or LIGHTBUS_CONFIG).`,
      { code: ErrorCodes.CONFIG_NOT_FOUND, cause: error },
    );
  }
  try {
    return extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigurationError(`The configuration file ${path} is not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The options of one API after applying `apis.{name}`, then `apis.default`, then the defaults. */
export function resolveApiConfig(config: LightbusConfig, apiName: string): ResolvedApiConfig {
  const own = config.apis?.[apiName] ?? {};
  const fallback = config.apis?.['default'] ?? {};
  const pick = <K extends keyof ApiConfig>(key: K): ApiConfig[K] => own[key] ?? fallback[key];
  const validate = pick('validate') ?? true;
  const v = typeof validate === 'boolean' ? { incoming: validate, outgoing: validate } : validate;
  return {
    transports: {
      rpc: pick('rpc_transport') ?? MEMORY,
      result: pick('result_transport') ?? MEMORY,
      event: pick('event_transport') ?? MEMORY,
      schema: pick('schema_transport') ?? config.bus?.schema?.transport ?? MEMORY,
    },
    rpcTimeoutMs: (pick('rpc_timeout') ?? 5) * 1000,
    validateIncoming: v.incoming ?? true,
    validateOutgoing: v.outgoing ?? true,
    strictValidation: pick('strict_validation') ?? false,
    eventListenerConcurrency: pick('event_listener_concurrency') ?? 1,
    maxDeliveries: pick('max_deliveries') ?? 5,
    retryDelayMs: (pick('retry_delay') ?? 1) * 1000,
    maxRetryDelayMs: (pick('max_retry_delay') ?? 60) * 1000,
    rpcConcurrency: pick('rpc_concurrency') ?? 32,
    maxMessageBytes: pick('max_message_bytes') ?? 1_048_576,
  };
}

/** The schema TTL in seconds. */
export function schemaTtl(config: LightbusConfig): number {
  return config.bus?.schema?.ttl ?? 60;
}

/**
 * The service name to use when none is configured: the `name` of the nearest package.json
 * (scope removed), else the folder name. Stable across restarts, unlike a random one, so a
 * restarted listener keeps its group and misses nothing.
 */
export function defaultServiceName(cwd = process.cwd()): string {
  let dir = resolve(cwd);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        const name = (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name;
        if (typeof name === 'string' && name !== '') return sanitizeName(name.replace(/^@[^/]+\//, ''));
      } catch {
        // unreadable package.json: fall through to the folder name
      }
      break;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return sanitizeName(basename(resolve(cwd))) || 'lightbus_service';
}

/** The process name to use when none is configured: `{hostname}-{pid}`. */
export function defaultProcessName(): string {
  return sanitizeName(`${hostname()}-${process.pid}`);
}

function sanitizeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.:-]+/g, '_');
}
