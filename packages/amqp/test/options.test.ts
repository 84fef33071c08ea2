import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '@lightbus/core';
import { buildReturnPath, decodeCall, decodeEvent, decodeResult, encodeEvent, encodeResult, parseReturnPath, resolveOptions, transportPlugin } from '../src/index.js';

describe('options', () => {
  it('applies the documented defaults', () => {
    const o = resolveOptions();
    expect(o.targets).toHaveLength(1);
    expect(o.targets[0]!.connect).toEqual({ protocol: 'amqp', hostname: '127.0.0.1', port: 5672, username: 'guest', password: 'guest', vhost: '/' });
    expect(o.socket).toMatchObject({ noDelay: true });
    expect(o.names.eventsExchange).toBe('lightbus.events');
    expect(o.names.deadQueue).toBe('lightbus.dead');
    expect(o.names.groupQueue('auth_service-welcome')).toBe('lightbus.events.auth_service-welcome');
    expect(o.names.rpcQueue('my_company.auth')).toBe('lightbus.rpc.my_company.auth');
    expect(o).toMatchObject({ prefetch: 32, ackTimeoutMs: 30_000, maxDeliveries: 20, connectTimeoutMs: 10_000 });
  });

  it('lets username, password, vhost and heartbeat override the URL, and keeps urls in order', () => {
    const o = resolveOptions({
      urls: ['amqp://a:b@one.example:5673/v1', 'amqps://two.example'],
      username: 'svc',
      password: 's3cret!',
      vhost: 'prod',
      heartbeat: 15,
      queue_prefix: 'acme',
      exchange: 'acme.bus',
    });
    expect(o.targets.map((t) => t.connect)).toEqual([
      { protocol: 'amqp', hostname: 'one.example', port: 5673, username: 'svc', password: 's3cret!', vhost: 'prod', heartbeat: 15 },
      { protocol: 'amqps', hostname: 'two.example', port: 5671, username: 'svc', password: 's3cret!', vhost: 'prod', heartbeat: 15 },
    ]);
    expect(o.names.eventsExchange).toBe('acme.bus');
    expect(o.names.rpcQueue('x')).toBe('acme.rpc.x');
  });

  it('decodes the vhost from the URL path', () => {
    expect(resolveOptions({ url: 'amqp://u:p@h/%2F' }).targets[0]!.connect.vhost).toBe('/');
    expect(resolveOptions({ url: 'amqp://u:p@h/staging' }).targets[0]!.connect.vhost).toBe('staging');
  });

  it('never puts the password into labels or errors', () => {
    const o = resolveOptions({ url: 'amqp://user:hunter2@h:5672/' });
    expect(o.targets[0]!.label).toBe('amqp://user@h:5672/%2F');
    expect(() => resolveOptions({ url: 'http://user:hunter2@h/' })).toThrow(/amqp:\/\/ or amqps:\/\//);
    try {
      resolveOptions({ url: 'http://user:hunter2@h/' });
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
    }
  });

  it('rejects unknown and malformed options with a ConfigurationError', () => {
    expect(() => resolveOptions({ prefetchCount: 3 } as never)).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }) as Error);
    expect(() => resolveOptions({ prefetch: 0 })).toThrow(/prefetch must be a positive integer/);
    expect(() => resolveOptions({ exchange: 'amq.topic' })).toThrow(/reserved/);
    expect(() => resolveOptions({ urls: [] })).toThrow(/urls/);
    expect(() => resolveOptions({ tls: { ca: '/nonexistent/ca.pem' } })).toThrow(/cannot read the TLS ca file/);
  });

  it('shares a connection key between equal options only', () => {
    expect(resolveOptions({ url: 'amqp://h' }).connectionKey).toBe(resolveOptions({ url: 'amqp://h', prefetch: 5 }).connectionKey);
    expect(resolveOptions({ url: 'amqp://h' }).connectionKey).not.toBe(resolveOptions({ url: 'amqp://h', vhost: 'other' }).connectionKey);
  });

  it('is a TransportPlugin named amqp with an options schema and no schema role', () => {
    expect(transportPlugin.name).toBe('amqp');
    expect(transportPlugin.optionsSchema).toMatchObject({ type: 'object', additionalProperties: false });
    expect(transportPlugin.createSchemaTransport).toBeUndefined();
    expect(typeof transportPlugin.createEventTransport).toBe('function');
  });
});

describe('return paths', () => {
  it('round-trips queue names and ids with odd characters', () => {
    const path = buildReturnPath('lightbus.reply.svc.host-1:9.ab12', 'id/with?odd&chars');
    expect(path.startsWith('amqp+queue://')).toBe(true);
    expect(parseReturnPath(path)).toEqual({ queue: 'lightbus.reply.svc.host-1:9.ab12', correlationId: 'id/with?odd&chars' });
  });

  it('refuses what is not an amqp+queue return path', () => {
    expect(parseReturnPath('redis+key://x:result:1')).toBeUndefined();
    expect(parseReturnPath('amqp+queue://q')).toBeUndefined();
    expect(parseReturnPath('amqp+queue://q?other=1')).toBeUndefined();
  });
});

describe('wire format', () => {
  it('round-trips events and results', () => {
    const event = { id: 'e1', apiName: 'a.b', eventName: 'c', version: 2, kwargs: { x: [1, 'é', null] } };
    expect(decodeEvent(encodeEvent(event))).toEqual(event);
    const result = { id: 'r1', rpcMessageId: 'c1', error: true, result: "Error('x')", trace: 'at y' };
    expect(decodeResult(encodeResult(result))).toEqual(result);
  });

  it('names what is wrong with a malformed body', () => {
    expect(() => decodeEvent(Buffer.from('{'))).toThrow(/not JSON/);
    expect(() => decodeEvent(Buffer.from('{"metadata":{"id":"1","api_name":"a","event_name":"e","version":0},"kwargs":{}}'))).toThrow(/version/);
    expect(() => decodeCall(Buffer.from('{"metadata":{"id":"1","api_name":"a","procedure_name":"p"},"kwargs":{}}'))).toThrow(/return_path/);
    expect(() => decodeResult(Buffer.from('{"metadata":{"id":"1","rpc_message_id":"c"},"kwargs":{}}'))).toThrow(/error/);
    expect(() => decodeEvent(Buffer.from('{"metadata":{},"kwargs":[]}'))).toThrow(/kwargs/);
  });
});
