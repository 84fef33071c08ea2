/**
 * Options of the NATS transports, their defaults, their JSON Schema, and the rules that turn
 * Lightbus names (API names with dots, `{service}-{listener}` groups) into NATS subjects,
 * JetStream stream, consumer and key-value names.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { ConfigurationError } from '@lightbus/core';

/** TLS files for a NATS connection. */
export interface NatsTlsOptions {
  /** Path to the CA certificate (PEM) that signed the server's certificate. */
  ca?: string;
  /** Path to the client certificate (PEM), for servers that verify clients. */
  cert?: string;
  /** Path to the client certificate's private key (PEM). */
  key?: string;
}

/**
 * Options of the NATS transports (config key `nats`). All keys are optional. (A type alias rather
 * than an interface, so a typed options object fits the config's `{ nats: {...} }` selection.)
 */
export type NatsTransportOptions = {
  /** One server URL or a list (the client picks one and fails over). Default `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** User name for user/password authentication. */
  user?: string;
  /** Password for user/password authentication. Never logged. */
  pass?: string;
  /** Token for token authentication. Never logged. */
  token?: string;
  /** TLS: `true` requires TLS with the system CAs; an object names the CA, certificate and key files. */
  tls?: boolean | NatsTlsOptions;
  /** The connection's name, shown by the server's monitoring. Default `lightbus {service} {process}`. */
  name?: string;
  /** First token of every subject the transports use. Default `lightbus`. Tests use a unique one. */
  subject_prefix?: string;
  /** First part of every JetStream stream name the transports create. Default `lightbus`. */
  stream_prefix?: string;
  /** Seconds a delivered, unacknowledged event stays with its consumer before JetStream redelivers it. Default 60. */
  acknowledgement_timeout?: number;
  /**
   * Deliveries after which an event is dead-lettered by the transport itself, whatever the
   * listener does (protects against an event that crashes its process every time). Keep it above
   * the bus's own `max_deliveries`. Default 20.
   */
  max_deliveries?: number;
  /**
   * Wait for JetStream to confirm each acknowledgement (a round trip per event) before `ack()`
   * resolves. Off by default: an acknowledgement lost on the way (connection dropped) only means
   * the event is delivered again, which at-least-once delivery allows. Default false.
   */
  ack_confirm?: boolean;
  /** How many events one pull asks JetStream for, when the listener does not say. Default 10. */
  batch_size?: number;
  /** Seconds an event is kept in its stream; 0 keeps events until `max_stream_length` trims them. Default 0. */
  stream_max_age?: number;
  /** Events kept per API stream (oldest dropped first); `null` keeps all. Default 100000. */
  max_stream_length?: number | null;
  /** Storage of the streams this transport creates: `file` (survives a server restart) or `memory`. Default `file`. */
  storage?: 'file' | 'memory';
  /** The JetStream key-value bucket that holds API schemas. Default `{stream_prefix}_schema`. */
  schema_bucket?: string;
  /** An existing connection to use instead of opening one. The transports never close it. */
  connection?: NatsConnection;
};

/** The options with defaults filled in. */
export interface ResolvedNatsOptions {
  /** `subject_prefix`. */
  subjectPrefix: string;
  /** `stream_prefix`. */
  streamPrefix: string;
  /** `acknowledgement_timeout` in milliseconds. */
  ackWaitMs: number;
  /** `max_deliveries`. */
  maxDeliveries: number;
  /** `ack_confirm`. */
  ackConfirm: boolean;
  /** `batch_size`. */
  batchSize: number;
  /** `stream_max_age` in milliseconds (0: no age limit). */
  streamMaxAgeMs: number;
  /** `max_stream_length` (`null`: no length limit). */
  maxStreamLength: number | null;
  /** `storage`. */
  storage: 'file' | 'memory';
  /** `schema_bucket`. */
  schemaBucket: string;
}

const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const NAME_PREFIX = /^[A-Za-z0-9_-]+$/;

/** Fills in defaults and checks the naming options. Throws a {@link ConfigurationError} on bad values. */
export function resolveOptions(options: NatsTransportOptions): ResolvedNatsOptions {
  const subjectPrefix = options.subject_prefix ?? 'lightbus';
  const streamPrefix = options.stream_prefix ?? 'lightbus';
  if (!SUBJECT_PREFIX.test(subjectPrefix)) {
    throw new ConfigurationError(
      `nats subject_prefix "${subjectPrefix}" is not a valid subject prefix: use letters, digits, "_" and "-", in tokens separated by dots (e.g. "lightbus" or "acme.bus").`,
    );
  }
  if (!NAME_PREFIX.test(streamPrefix)) {
    throw new ConfigurationError(`nats stream_prefix "${streamPrefix}" may only hold letters, digits, "_" and "-" (JetStream stream names cannot contain dots).`);
  }
  const schemaBucket = options.schema_bucket ?? `${streamPrefix}_schema`;
  if (!NAME_PREFIX.test(schemaBucket)) {
    throw new ConfigurationError(`nats schema_bucket "${schemaBucket}" may only hold letters, digits, "_" and "-".`);
  }
  const positive = (key: keyof NatsTransportOptions, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new ConfigurationError(`nats ${key} must be a positive number, got ${String(value)}.`);
    }
    return value;
  };
  const maxAge = options.stream_max_age ?? 0;
  if (typeof maxAge !== 'number' || maxAge < 0) throw new ConfigurationError(`nats stream_max_age must be 0 (keep) or a positive number of seconds.`);
  const storage = options.storage ?? 'file';
  if (storage !== 'file' && storage !== 'memory') throw new ConfigurationError(`nats storage must be "file" or "memory", got "${String(storage)}".`);
  return {
    subjectPrefix,
    streamPrefix,
    ackWaitMs: positive('acknowledgement_timeout', options.acknowledgement_timeout, 60) * 1000,
    maxDeliveries: Math.floor(positive('max_deliveries', options.max_deliveries, 20)),
    ackConfirm: options.ack_confirm ?? false,
    batchSize: Math.floor(positive('batch_size', options.batch_size, 10)),
    streamMaxAgeMs: maxAge * 1000,
    maxStreamLength: options.max_stream_length === undefined ? 100_000 : options.max_stream_length,
    storage,
    schemaBucket,
  };
}

/** JSON Schema of {@link NatsTransportOptions}. */
export const natsOptionsSchema: Record<string, unknown> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    servers: {
      description: 'NATS server URL, or a list of them. Default nats://127.0.0.1:4222.',
      oneOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }],
    },
    user: { type: 'string', description: 'User name (user/password authentication).' },
    pass: { type: 'string', description: 'Password (user/password authentication).' },
    token: { type: 'string', description: 'Authentication token.' },
    tls: {
      description: 'true to require TLS, or the PEM files to use.',
      oneOf: [
        { type: 'boolean' },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            ca: { type: 'string', description: 'CA certificate file.' },
            cert: { type: 'string', description: 'Client certificate file.' },
            key: { type: 'string', description: 'Client private key file.' },
          },
        },
      ],
    },
    name: { type: 'string', description: 'Connection name shown in server monitoring.' },
    subject_prefix: { type: 'string', pattern: SUBJECT_PREFIX.source, description: 'First token(s) of every subject. Default lightbus.' },
    stream_prefix: { type: 'string', pattern: NAME_PREFIX.source, description: 'Prefix of every stream name. Default lightbus.' },
    acknowledgement_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds before an unacknowledged event is redelivered. Default 60.' },
    max_deliveries: { type: 'integer', minimum: 1, description: 'Deliveries after which the transport dead-letters an event. Default 20.' },
    ack_confirm: { type: 'boolean', description: 'Wait for the server to confirm each acknowledgement. Default false.' },
    batch_size: { type: 'integer', minimum: 1, description: 'Events per pull. Default 10.' },
    stream_max_age: { type: 'number', minimum: 0, description: 'Seconds events are kept; 0 keeps them. Default 0.' },
    max_stream_length: { type: ['integer', 'null'], minimum: 1, description: 'Events kept per API stream; null keeps all. Default 100000.' },
    storage: { enum: ['file', 'memory'], description: 'JetStream storage of created streams. Default file.' },
    schema_bucket: { type: 'string', pattern: NAME_PREFIX.source, description: 'Key-value bucket for schemas. Default {stream_prefix}_schema.' },
    connection: { description: 'An existing NatsConnection (programmatic use only).' },
  },
};

// ---------------------------------------------------------------------------------------------
// Naming

/** `{subject_prefix}.rpc.{api}`: where calls to an API are published (dots in API names are subject tokens). */
export function rpcSubject(o: ResolvedNatsOptions, apiName: string): string {
  return `${o.subjectPrefix}.rpc.${apiName}`;
}

/** `{subject_prefix}.event.{api}.{event}`: where an event is published. */
export function eventSubject(o: ResolvedNatsOptions, apiName: string, eventName: string): string {
  return `${o.subjectPrefix}.event.${apiName}.${eventName}`;
}

/**
 * `{subject_prefix}.event.{api}.*`: every event of one API. `*` (one token) rather than `>`, so
 * that the streams of `auth` and `auth.admin` do not overlap (event names hold no dots).
 */
export function eventWildcard(o: ResolvedNatsOptions, apiName: string): string {
  return `${o.subjectPrefix}.event.${apiName}.*`;
}

/** `{subject_prefix}.dead.{api}.{event}`: where a dead-lettered event is stored. */
export function deadSubject(o: ResolvedNatsOptions, apiName: string, eventToken: string): string {
  return `${o.subjectPrefix}.dead.${apiName}.${eventToken}`;
}

/** `{subject_prefix}.dead.{api}.*`: the subjects of an API's dead-letter stream. */
export function deadWildcard(o: ResolvedNatsOptions, apiName: string): string {
  return `${o.subjectPrefix}.dead.${apiName}.*`;
}

/**
 * Turns an API name into a stream-name part: dots become `-` (JetStream names cannot contain
 * dots; API names cannot contain `-`, so the mapping is one-to-one).
 */
export function apiToken(apiName: string): string {
  return apiName.replaceAll('.', '-');
}

/** `{stream_prefix}_event_{api, dots as -}`: the stream of one API's events. */
export function eventStreamName(o: ResolvedNatsOptions, apiName: string): string {
  return `${o.streamPrefix}_event_${apiToken(apiName)}`;
}

/** `{stream_prefix}_dead_{api, dots as -}`: the dead-letter stream of one API. */
export function deadStreamName(o: ResolvedNatsOptions, apiName: string): string {
  return `${o.streamPrefix}_dead_${apiToken(apiName)}`;
}

/**
 * The durable consumer name of a listener group `{service}-{listener}`. Characters JetStream does
 * not allow in names (dots, spaces, `*`, `>`, slashes...) become `_`, and then a short hash of the
 * original group name is appended so two groups never map to one consumer.
 */
export function consumerName(group: string): string {
  const safe = group.replace(/[^A-Za-z0-9_-]/g, '_');
  if (safe === group && safe.length <= 200) return safe;
  const hash = createHash('sha256').update(group).digest('hex').slice(0, 10);
  return `${safe.slice(0, 180)}_${hash}`;
}

const KEY_SAFE = /[^A-Za-z0-9_.-]/g;

/**
 * Key-value keys allow letters, digits, `-`, `_`, `.`, `/` and `=`. API names use only letters,
 * digits, `_` and dots, so they are stored as they are; any other character (from a foreign
 * writer) is written as `=XX` (hex, per UTF-8 byte), and `=` itself likewise.
 */
export function schemaKey(apiName: string): string {
  return apiName.replace(KEY_SAFE, (c) => [...Buffer.from(c, 'utf8')].map((b) => `=${b.toString(16).padStart(2, '0')}`).join(''));
}

/** The reverse of {@link schemaKey}. */
export function apiFromSchemaKey(key: string): string {
  if (!key.includes('=')) return key;
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    if (key[i] === '=' && /^[0-9a-f]{2}$/i.test(key.slice(i + 1, i + 3))) {
      bytes.push(parseInt(key.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(key[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
