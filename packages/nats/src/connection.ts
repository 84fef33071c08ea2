/**
 * One NATS connection shared by every transport built with the same connection options (servers,
 * credentials, TLS, and `name` when given), reference-counted: the last transport to close drains it. A connection
 * given as the `connection` option is used as it is and never closed here.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { Events, connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { TransportError, describeError, type Logger } from '@lightbus/core';
import type { NatsTransportOptions } from './options.js';

/** Hides credentials in URLs, and the configured password and token wherever they appear. */
function redactFor(options: NatsTransportOptions, text: string): string {
  let out = text.replace(/(\w[\w+.-]*:\/\/)[^@\s/]+@/g, '$1***@');
  for (const secret of [options.pass, options.token]) if (secret) out = out.split(secret).join('***');
  return out;
}

interface Shared {
  connection: Promise<NatsConnection>;
  refs: number;
}

const pool = new Map<string, Shared>();

/** A handle on a (possibly shared) connection. Release it exactly once. */
export interface ConnectionLease {
  /** The connection. */
  readonly nc: NatsConnection;
  /** Gives the lease back; the last holder of a pooled connection drains it. */
  release(): Promise<void>;
}

function servers(options: NatsTransportOptions): string[] {
  const s = options.servers ?? 'nats://127.0.0.1:4222';
  return Array.isArray(s) ? s : [s];
}

function poolKey(options: NatsTransportOptions): string {
  const material = JSON.stringify([servers(options), options.user ?? null, options.pass ?? null, options.token ?? null, options.tls ?? null, options.name ?? null]);
  return createHash('sha256').update(material).digest('hex');
}

/** The nats.js connection options for our options. */
export function connectionOptions(options: NatsTransportOptions, defaultName: string): ConnectionOptions {
  const out: ConnectionOptions = {
    servers: servers(options),
    name: options.name ?? defaultName,
    // Its async stack capture costs ~40% of client CPU (performance notes).
    noAsyncTraces: true,
    // A bus keeps trying: a worker should come back when the server does.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
  };
  if (options.user !== undefined) out.user = options.user;
  if (options.pass !== undefined) out.pass = options.pass;
  if (options.token !== undefined) out.token = options.token;
  if (options.tls === true) out.tls = {};
  else if (options.tls && typeof options.tls === 'object') {
    out.tls = {};
    if (options.tls.ca !== undefined) out.tls.caFile = options.tls.ca;
    if (options.tls.cert !== undefined) out.tls.certFile = options.tls.cert;
    if (options.tls.key !== undefined) out.tls.keyFile = options.tls.key;
  }
  return out;
}

async function open(options: NatsTransportOptions, defaultName: string, logger: Logger): Promise<NatsConnection> {
  const redactUrl = (text: string) => redactFor(options, text);
  const where = servers(options).map(redactUrl).join(', ');
  let nc: NatsConnection;
  try {
    nc = await connect(connectionOptions(options, defaultName));
  } catch (error) {
    throw new TransportError(
      `Could not connect to NATS at ${where}: ${redactUrl(describeError(error))}. Check that nats-server runs there (with -js for events and schemas) and that the credentials and TLS options are right.`,
      { cause: error },
    );
  }
  void (async () => {
    for await (const s of nc.status()) {
      const server = typeof s.data === 'string' ? redactUrl(s.data) : undefined;
      if (s.type === Events.Disconnect) logger.warn('NATS connection lost; reconnecting', { server });
      else if (s.type === Events.Reconnect) logger.info('NATS connection re-established', { server });
      else if (s.type === Events.Error) logger.error(`NATS connection error: ${redactUrl(describeError(s.data))}`);
    }
  })().catch(() => {});
  return nc;
}

/**
 * Gets a connection for `options`: the given `connection`, or a pooled one opened on first use.
 */
export async function acquireConnection(options: NatsTransportOptions, defaultName: string, logger: Logger): Promise<ConnectionLease> {
  if (options.connection) {
    const nc = options.connection;
    return { nc, release: async () => {} };
  }
  const key = poolKey(options);
  for (;;) {
    let entry = pool.get(key);
    if (!entry) {
      const created: Shared = { connection: open(options, defaultName, logger), refs: 0 };
      entry = created;
      pool.set(key, created);
      created.connection.catch(() => {
        if (pool.get(key) === created) pool.delete(key);
      });
    }
    // Count the lease before waiting, so a concurrent release cannot drain it under us.
    entry.refs++;
    let nc: NatsConnection;
    try {
      nc = await entry.connection;
    } catch (error) {
      entry.refs--;
      throw error;
    }
    if (nc.isClosed()) {
      // Closed for good (e.g. by its owner): forget it and open another.
      entry.refs--;
      if (pool.get(key) === entry) pool.delete(key);
      continue;
    }
    return lease(key, entry, nc);
  }
}

function lease(key: string, entry: Shared, nc: NatsConnection): ConnectionLease {
  let released = false;
  return {
    nc,
    release: async () => {
      if (released) return;
      released = true;
      entry.refs--;
      if (entry.refs > 0) return;
      if (pool.get(key) === entry) pool.delete(key);
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
}
