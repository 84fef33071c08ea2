import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import type { NatsTransportOptions } from '../src/options.js';

/** The NATS server the tests use (shared with other tests and people: never flushed). */
export const NATS_URL = process.env['LIGHTBUS_TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';

/** A prefix unique to this test run: every subject, stream and bucket the tests create starts with it. */
export const RUN_PREFIX = `lbt_${randomBytes(4).toString('hex')}`;

/** Options isolating one test context: its own subject prefix, stream prefix and schema bucket. */
export function isolatedOptions(id: string, extra: NatsTransportOptions = {}): NatsTransportOptions {
  return {
    servers: NATS_URL,
    subject_prefix: `${RUN_PREFIX}.${id}`,
    stream_prefix: `${RUN_PREFIX}_${id}`,
    acknowledgement_timeout: 1,
    ...extra,
  };
}

let admin: Promise<NatsConnection> | undefined;

/** A separate connection for reading the broker directly (the back door). */
export function adminConnection(): Promise<NatsConnection> {
  admin ??= connect({ servers: NATS_URL, noAsyncTraces: true, name: 'lightbus nats tests (back door)' });
  return admin;
}

/** Closes the back-door connection. */
export async function closeAdmin(): Promise<void> {
  const a = admin;
  admin = undefined;
  if (a) await (await a).drain();
}

/** Deletes every stream (and so every consumer and KV bucket) whose name starts with `prefix`. */
export async function deleteStreams(prefix: string): Promise<void> {
  const nc = await adminConnection();
  const jsm = await nc.jetstreamManager();
  const names: string[] = [];
  for await (const name of jsm.streams.names()) {
    if (name.startsWith(prefix) || name.startsWith(`KV_${prefix}`)) names.push(name);
  }
  await Promise.all(names.map((n) => jsm.streams.delete(n).catch(() => false)));
}

/** Every message of a stream, oldest first, read directly from JetStream (empty when it does not exist). */
export async function readStream(stream: string): Promise<Array<{ seq: number; subject: string; data: Uint8Array; headers: Record<string, string> }>> {
  const nc = await adminConnection();
  const jsm = await nc.jetstreamManager();
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch {
    return [];
  }
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const sm = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!sm) continue;
    const headers: Record<string, string> = {};
    if (sm.header) for (const [k, v] of sm.header) headers[k] = v.join(',');
    out.push({ seq: sm.seq, subject: sm.subject, data: sm.data, headers });
  }
  return out;
}
