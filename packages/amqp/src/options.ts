/**
 * Options of the AMQP transports (config key `amqp`), their defaults, their JSON Schema and the
 * names of everything the transports declare on the broker.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { ConfigurationError, redactUrl } from '@lightbus/core';
import type { ChannelModel } from 'amqplib';

/** TLS files for `amqps://` connections. Paths are read once, when the transport is built. */
export interface AmqpTlsOptions {
  /** Path(s) of the CA certificate(s) that signed the broker's certificate. */
  ca?: string | string[];
  /** Path of the client certificate (for certificate authentication). */
  cert?: string;
  /** Path of the client certificate's private key. */
  key?: string;
  /** Passphrase of the private key. Never logged. */
  passphrase?: string;
  /** Host name to check the broker's certificate against, when it differs from the URL's. */
  servername?: string;
  /** Refuse brokers whose certificate does not check out. Default true. */
  reject_unauthorized?: boolean;
}

/** Options of the AMQP transports, as written under `{ amqp: {...} }` in the config. */
export interface AmqpTransportOptions {
  /** Broker URL. Default `amqp://guest:guest@127.0.0.1:5672`. */
  url?: string;
  /** Several broker URLs, tried in order on every (re)connect. Takes precedence over `url`. */
  urls?: string[];
  /** Virtual host; overrides the one in the URL. Default: the URL's, else `/`. */
  vhost?: string;
  /** User name; overrides the one in the URL. */
  username?: string;
  /** Password; overrides the one in the URL. Never logged. */
  password?: string;
  /** TLS settings; setting them connects with `amqps://`. */
  tls?: AmqpTlsOptions;
  /** The topic exchange events are published to. Default `{queue_prefix}.events`. */
  exchange?: string;
  /** Prefix of every queue and exchange name the transports declare. Default `lightbus`. */
  queue_prefix?: string;
  /** Unacknowledged RPC calls one worker holds per API (the consumer prefetch). Default 32. */
  prefetch?: number;
  /**
   * Seconds an event handed to a handler may stay unsettled after its consume loop stopped,
   * before it goes back to the queue for another consumer. Default 30.
   */
  acknowledgement_timeout?: number;
  /**
   * Broker-side delivery limit of listener queues (quorum `x-delivery-limit`): a message returned
   * more often than this (say it crashes every process that takes it) is dead-lettered by
   * RabbitMQ itself. Keep it above the APIs' `max_deliveries`. Default 20. Fixed when a queue is
   * first declared.
   */
  max_deliveries?: number;
  /** Heartbeat interval in seconds; 0 turns heartbeats off. Default: the broker's (60). */
  heartbeat?: number;
  /** Seconds to wait for a connection before an operation fails. Default 10. */
  connect_timeout?: number;
  /**
   * An amqplib connection (`await amqplib.connect(...)`) to use instead of opening one. Lightbus
   * never closes it, and cannot reopen it when it drops: prefer `url` for automatic reconnects.
   */
  connection?: ChannelModel;
}

/** The options after defaults are applied. */
export interface ResolvedAmqpOptions {
  /** Connection targets, in the order they are tried. */
  targets: ConnectTarget[];
  /** Socket options shared by every target (TLS files, `noDelay`). */
  socket: Record<string, unknown>;
  /** Queue and exchange names. */
  names: AmqpNames;
  /** RPC prefetch. */
  prefetch: number;
  /** Grace for unsettled events after a consume loop stops, in ms. */
  ackTimeoutMs: number;
  /** Quorum delivery limit. */
  maxDeliveries: number;
  /** Connect timeout in ms. */
  connectTimeoutMs: number;
  /** A connection given by the user. */
  connection: ChannelModel | undefined;
  /** Identifies the connection: transports with equal keys share one. */
  connectionKey: string;
}

/** One broker to connect to. `label` is the URL with its password hidden. */
export interface ConnectTarget {
  /** amqplib's connect options. */
  connect: {
    protocol: 'amqp' | 'amqps';
    hostname: string;
    port: number;
    username: string;
    password: string;
    vhost: string;
    heartbeat?: number;
  };
  /** For logs and errors: never contains the password. */
  label: string;
}

/** The names of everything the transports declare. */
export interface AmqpNames {
  /** The prefix. */
  prefix: string;
  /** Topic exchange of events. */
  eventsExchange: string;
  /** Topic exchange dead letters are published to. */
  deadExchange: string;
  /** Queue bound to the dead-letter exchange with `#`. */
  deadQueue: string;
  /** The queue of one listener group. */
  groupQueue(group: string): string;
  /** The RPC queue of one API. */
  rpcQueue(apiName: string): string;
  /** The reply queue of one process (a random suffix is added). */
  replyQueue(serviceName: string, processName: string, random: string): string;
}

/** The routing key of one event on the events exchange: `{api}.{event}`. */
export function routingKey(apiName: string, eventName: string): string {
  return `${apiName}.${eventName}`;
}

/** Builds the names for one prefix and events exchange. */
export function amqpNames(prefix = 'lightbus', exchange?: string): AmqpNames {
  return {
    prefix,
    eventsExchange: exchange ?? `${prefix}.events`,
    deadExchange: `${prefix}.dead`,
    deadQueue: `${prefix}.dead`,
    groupQueue: (group) => `${prefix}.events.${group}`,
    rpcQueue: (apiName) => `${prefix}.rpc.${apiName}`,
    replyQueue: (service, proc, random) => `${prefix}.reply.${service}.${proc}.${random}`,
  };
}

/** The default broker URL. */
export const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672';

const KNOWN = new Set([
  'url',
  'urls',
  'vhost',
  'username',
  'password',
  'tls',
  'exchange',
  'queue_prefix',
  'prefetch',
  'acknowledgement_timeout',
  'max_deliveries',
  'heartbeat',
  'connect_timeout',
  'connection',
]);

function invalid(what: string): ConfigurationError {
  return new ConfigurationError(`amqp transport options: ${what}`);
}

function positive(value: unknown, name: string, fallback: number, integer = false): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw invalid(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}.`);
  }
  return value;
}

function parseTarget(raw: string, options: AmqpTransportOptions): ConnectTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (error) {
    throw new ConfigurationError(`amqp transport options: "${redactUrl(raw)}" is not a valid URL. Write it as amqp://user:password@host:5672/vhost.`, {
      cause: error,
    });
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme !== 'amqp' && scheme !== 'amqps') {
    throw invalid(`"${redactUrl(raw)}" must start with amqp:// or amqps://.`);
  }
  const protocol = options.tls ? 'amqps' : scheme;
  const hostname = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = url.port ? Number(url.port) : protocol === 'amqps' ? 5671 : 5672;
  const fromUrlUser = url.username || url.password ? decodeURIComponent(url.username) : 'guest';
  const fromUrlPassword = url.username || url.password ? decodeURIComponent(url.password) : 'guest';
  const path = url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : '/';
  const connect: ConnectTarget['connect'] = {
    protocol,
    hostname,
    port,
    username: options.username ?? fromUrlUser,
    password: options.password ?? fromUrlPassword,
    vhost: options.vhost ?? path,
  };
  const heartbeatParam = url.searchParams.get('heartbeat');
  if (options.heartbeat !== undefined) connect.heartbeat = options.heartbeat;
  else if (heartbeatParam !== null && /^\d+$/.test(heartbeatParam)) connect.heartbeat = Number(heartbeatParam);
  const host = hostname.includes(':') ? `[${hostname}]` : hostname;
  const label = `${protocol}://${encodeURIComponent(connect.username)}@${host}:${port}/${encodeURIComponent(connect.vhost)}`;
  return { connect, label };
}

function readTls(tls: AmqpTlsOptions): Record<string, unknown> {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigurationError(`amqp transport options: cannot read the TLS ${what} file "${path}": ${(error as Error).message}. Check tls.${what}.`, {
        cause: error,
      });
    }
  };
  const out: Record<string, unknown> = {};
  if (tls.ca !== undefined) out['ca'] = (Array.isArray(tls.ca) ? tls.ca : [tls.ca]).map((p) => read(p, 'ca'));
  if (tls.cert !== undefined) out['cert'] = read(tls.cert, 'cert');
  if (tls.key !== undefined) out['key'] = read(tls.key, 'key');
  if (tls.passphrase !== undefined) out['passphrase'] = tls.passphrase;
  if (tls.servername !== undefined) out['servername'] = tls.servername;
  if (tls.reject_unauthorized !== undefined) out['rejectUnauthorized'] = tls.reject_unauthorized;
  return out;
}

const identities = new WeakMap<object, number>();
let nextIdentity = 1;

/** Applies defaults and checks the options. Throws a {@link ConfigurationError} naming the bad option. */
export function resolveOptions(options: AmqpTransportOptions = {}): ResolvedAmqpOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw invalid(`"${key}" is not a known option (known: ${[...KNOWN].join(', ')}). Options are snake_case.`);
  }
  if (options.urls !== undefined && (!Array.isArray(options.urls) || options.urls.length === 0 || options.urls.some((u) => typeof u !== 'string'))) {
    throw invalid('urls must be a non-empty list of amqp:// URLs.');
  }
  if (options.url !== undefined && typeof options.url !== 'string') throw invalid('url must be a string such as amqp://guest:guest@127.0.0.1:5672.');
  const prefix = options.queue_prefix ?? 'lightbus';
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.:-]+$/.test(prefix)) throw invalid('queue_prefix must be letters, digits, _ . : or -.');
  if (options.exchange !== undefined && (typeof options.exchange !== 'string' || options.exchange === '' || options.exchange.startsWith('amq.'))) {
    throw invalid('exchange must be a non-empty name that does not start with "amq." (those are reserved by RabbitMQ).');
  }
  if (options.heartbeat !== undefined && (typeof options.heartbeat !== 'number' || !Number.isInteger(options.heartbeat) || options.heartbeat < 0)) {
    throw invalid('heartbeat must be a whole number of seconds (0 turns heartbeats off).');
  }
  if (options.connection !== undefined && (typeof options.connection !== 'object' || typeof options.connection.createChannel !== 'function')) {
    throw invalid('connection must be an amqplib connection, as returned by `await amqplib.connect(url)`.');
  }
  const urls = options.urls ?? [options.url ?? DEFAULT_URL];
  const targets = urls.map((u) => parseTarget(u, options));
  const socket: Record<string, unknown> = { noDelay: true, ...(options.tls ? readTls(options.tls) : {}) };
  const connectionKey = options.connection
    ? `given#${identityOf(options.connection)}`
    : JSON.stringify({ targets: targets.map((t) => t.connect), tls: options.tls ?? null });
  return {
    targets,
    socket,
    names: amqpNames(prefix, options.exchange),
    prefetch: positive(options.prefetch, 'prefetch', 32, true),
    ackTimeoutMs: positive(options.acknowledgement_timeout, 'acknowledgement_timeout', 30) * 1000,
    maxDeliveries: positive(options.max_deliveries, 'max_deliveries', 20, true),
    connectTimeoutMs: positive(options.connect_timeout, 'connect_timeout', 10) * 1000,
    connection: options.connection,
    connectionKey,
  };
}

function identityOf(value: object): number {
  let id = identities.get(value);
  if (id === undefined) {
    id = nextIdentity++;
    identities.set(value, id);
  }
  return id;
}

/** The JSON Schema of {@link AmqpTransportOptions} (used by config checks and `dumpconfigschema`). */
export const optionsSchema: Record<string, unknown> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    url: { type: 'string', pattern: '^amqps?://', description: 'Broker URL. Default amqp://guest:guest@127.0.0.1:5672.' },
    urls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^amqps?://' }, description: 'Several broker URLs, tried in order.' },
    vhost: { type: 'string', description: 'Virtual host (overrides the URL).' },
    username: { type: 'string', description: 'User name (overrides the URL).' },
    password: { type: 'string', description: 'Password (overrides the URL). Never logged.' },
    tls: {
      type: 'object',
      additionalProperties: false,
      description: 'TLS files; setting them connects with amqps://.',
      properties: {
        ca: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description: 'CA certificate path(s).' },
        cert: { type: 'string', description: 'Client certificate path.' },
        key: { type: 'string', description: 'Client key path.' },
        passphrase: { type: 'string', description: 'Key passphrase.' },
        servername: { type: 'string', description: 'Host name to check the certificate against.' },
        reject_unauthorized: { type: 'boolean', description: 'Refuse unverified brokers. Default true.' },
      },
    },
    exchange: { type: 'string', minLength: 1, description: 'Events topic exchange. Default {queue_prefix}.events.' },
    queue_prefix: { type: 'string', pattern: '^[A-Za-z0-9_.:-]+$', description: 'Prefix of every queue and exchange name. Default lightbus.' },
    prefetch: { type: 'integer', minimum: 1, description: 'Unacknowledged RPC calls per worker and API. Default 32.' },
    acknowledgement_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds unsettled events stay with a stopped listener. Default 30.' },
    max_deliveries: { type: 'integer', minimum: 1, description: 'Broker-side delivery limit of listener queues. Default 20.' },
    heartbeat: { type: 'integer', minimum: 0, description: 'Heartbeat seconds; 0 turns heartbeats off. Default: the broker’s.' },
    connect_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds to wait for a connection. Default 10.' },
    connection: { type: 'object', description: 'An existing amqplib connection (code only, not in files).' },
  },
};
