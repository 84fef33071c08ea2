import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '@lightbus/core';
import {
  consumerName,
  deadStreamName,
  eventStreamName,
  eventSubject,
  eventWildcard,
  resolveOptions,
  rpcSubject,
} from '../src/options.js';
import { decodeEvent, decodeResult, decodeRpc, encodeEvent, encodeResult, encodeRpc } from '../src/wire.js';
import { natsTransports, transportPlugin } from '../src/index.js';

const o = resolveOptions({});
const bytes = (s: string) => new TextEncoder().encode(s);

describe('names', () => {
  it('builds subjects and stream names from API names with dots', () => {
    expect(rpcSubject(o, 'my_company.auth')).toBe('lightbus.rpc.my_company.auth');
    expect(eventSubject(o, 'my_company.auth', 'user_registered')).toBe('lightbus.event.my_company.auth.user_registered');
    expect(eventWildcard(o, 'my_company.auth')).toBe('lightbus.event.my_company.auth.*');
    expect(eventStreamName(o, 'my_company.auth')).toBe('lightbus_event_my_company-auth');
    expect(deadStreamName(o, 'my_company.auth')).toBe('lightbus_dead_my_company-auth');
    // API names hold no "-", so the mapping never merges two APIs.
    expect(eventStreamName(o, 'a_b.c')).not.toBe(eventStreamName(o, 'a.b_c'));
  });

  it('makes consumer names JetStream accepts, keeping distinct groups distinct', () => {
    expect(consumerName('svc-listener')).toBe('svc-listener');
    const dotted = consumerName('my.svc-listener');
    expect(dotted).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(dotted).not.toBe(consumerName('my_svc-listener'));
    expect(consumerName('a b*>/c')).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('rejects prefixes that would break subjects or stream names, saying what is allowed', () => {
    expect(() => resolveOptions({ stream_prefix: 'a.b' })).toThrow(/cannot contain dots/);
    expect(() => resolveOptions({ subject_prefix: 'a.*' })).toThrow(/not a valid subject prefix/);
    expect(() => resolveOptions({ acknowledgement_timeout: 0 })).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }) as Error);
    expect(resolveOptions({ subject_prefix: 'acme.bus' }).subjectPrefix).toBe('acme.bus');
  });

  it('exports the plugin under both names, with an options schema', () => {
    expect(natsTransports).toBe(transportPlugin);
    expect(transportPlugin.optionsSchema).toMatchObject({ type: 'object', additionalProperties: false });
  });
});

describe('wire format', () => {
  it('round-trips calls, results and events', () => {
    const call = { id: '1', apiName: 'a.b', procedureName: 'p', kwargs: { x: [1, 'é'] }, returnPath: 'nats+inbox://_INBOX.x.1', deadline: 123 };
    expect(decodeRpc(encodeRpc(call))).toEqual(call);
    const result = { id: '2', rpcMessageId: '1', error: true, result: "Error('x')", trace: 'Error: x' };
    expect(decodeResult(encodeResult(result))).toEqual(result);
    const event = { id: '3', apiName: 'a.b', eventName: 'e', version: 2, kwargs: { k: null } };
    expect(decodeEvent(encodeEvent(event))).toEqual(event);
    expect(JSON.parse(new TextDecoder().decode(encodeEvent(event)))).toEqual({
      metadata: { id: '3', api_name: 'a.b', event_name: 'e', version: 2 },
      kwargs: { k: null },
    });
  });

  it('names what is wrong in a malformed message', () => {
    expect(() => decodeEvent(bytes('[]'))).toThrow(/not a JSON object/);
    expect(() => decodeEvent(bytes('{"metadata":{},"kwargs":{}}'))).toThrow(/"version"/);
    expect(() => decodeEvent(bytes('{"metadata":{"version":1,"id":"x","api_name":"a"},"kwargs":{}}'))).toThrow(/"event_name"/);
    expect(() => decodeRpc(bytes('{"metadata":{"id":"x","api_name":"a","procedure_name":"p","return_path":"r","deadline":"soon"},"kwargs":{}}'))).toThrow(/deadline/);
    expect(() => decodeResult(bytes('{"metadata":{"id":"x","rpc_message_id":"y","error":"no"},"kwargs":{}}'))).toThrow(/"error"/);
    expect(() => decodeEvent(new Uint8Array([0xff, 0xfe]))).toThrow(expect.objectContaining({ code: ErrorCodes.MESSAGE_MALFORMED }) as Error);
  });
});

describe('secrets', () => {
  it('never shows credentials from server URLs in errors', async () => {
    const { redactSecrets } = await import('../src/base.js');
    expect(redactSecrets('cannot reach nats://bob:hunter2@h:4222 or nats://s3cr3t@h2')).toBe('cannot reach nats://***@h:4222 or nats://***@h2');
  });

  it('names the servers without credentials when the connection fails', async () => {
    const { NatsRpcTransport } = await import('../src/rpc.js');
    const { silentLogger } = await import('@lightbus/core');
    const t = new NatsRpcTransport({ servers: 'nats://bob:hunter2@127.0.0.1:1', token: 'tok3n' }, { serviceName: 's', processName: 'p', logger: silentLogger });
    const error = (await t.open().catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ code: ErrorCodes.TRANSPORT_ERROR });
    expect(error.message).toContain('127.0.0.1:1');
    expect(error.message).not.toContain('hunter2');
    expect(error.message).not.toContain('tok3n');
    await t.close();
  });
});
