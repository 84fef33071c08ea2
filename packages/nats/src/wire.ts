/**
 * The payloads the NATS transports put on the wire: UTF-8 JSON objects shaped like the Python
 * Lightbus blobs (`{"metadata": {...}, "kwargs": {...}}`), so that one reader of the bus sees one
 * format whatever the broker. Decoding checks every required field and throws a
 * {@link LightbusError} with code `LB_MESSAGE_MALFORMED` naming what is wrong.
 *
 * - RPC call: `{"metadata": {"id", "api_name", "procedure_name", "return_path", "deadline"?}, "kwargs": {...}}`
 *   (`deadline`: milliseconds since the epoch).
 * - Result: `{"metadata": {"id", "rpc_message_id", "error", "trace"?}, "kwargs": {"result": ...}}`.
 * - Event: `{"metadata": {"id", "api_name", "event_name", "version"}, "kwargs": {...}}`.
 *
 * @module
 */
import { ErrorCodes, LightbusError, type EventMessage, type Kwargs, type ResultMessage, type RpcMessage } from '@lightbus/core';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function malformed(what: string, reason: string): LightbusError {
  return new LightbusError(ErrorCodes.MESSAGE_MALFORMED, `Malformed ${what}: ${reason}.`);
}

function parseObject(data: Uint8Array, what: string): { metadata: Record<string, unknown>; kwargs: Kwargs } {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw malformed(what, `the payload is not UTF-8 JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformed(what, 'the payload is not a JSON object');
  const { metadata, kwargs } = value as Record<string, unknown>;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw malformed(what, 'the "metadata" object is missing');
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs)) throw malformed(what, 'the "kwargs" object is missing');
  return { metadata: metadata as Record<string, unknown>, kwargs: kwargs as Kwargs };
}

function text(metadata: Record<string, unknown>, key: string, what: string): string {
  const value = metadata[key];
  if (typeof value !== 'string' || value === '') throw malformed(what, `metadata "${key}" is missing or not a non-empty string`);
  return value;
}

/** Encodes an RPC call. */
export function encodeRpc(message: RpcMessage): Uint8Array {
  const metadata: Record<string, unknown> = {
    id: message.id,
    api_name: message.apiName,
    procedure_name: message.procedureName,
    return_path: message.returnPath,
  };
  if (message.deadline !== undefined) metadata['deadline'] = message.deadline;
  return encoder.encode(JSON.stringify({ metadata, kwargs: message.kwargs }));
}

/** Decodes an RPC call; throws `LB_MESSAGE_MALFORMED` when a field is missing or wrong. */
export function decodeRpc(data: Uint8Array): RpcMessage {
  const what = 'RPC call';
  const { metadata, kwargs } = parseObject(data, what);
  const message: RpcMessage = {
    id: text(metadata, 'id', what),
    apiName: text(metadata, 'api_name', what),
    procedureName: text(metadata, 'procedure_name', what),
    returnPath: text(metadata, 'return_path', what),
    kwargs,
  };
  const deadline = metadata['deadline'];
  if (deadline !== undefined && deadline !== null) {
    if (typeof deadline !== 'number' || !Number.isFinite(deadline)) throw malformed(what, 'metadata "deadline" is not a number of milliseconds');
    message.deadline = deadline;
  }
  return message;
}

/** Encodes an RPC result. */
export function encodeResult(result: ResultMessage): Uint8Array {
  const metadata: Record<string, unknown> = { id: result.id, rpc_message_id: result.rpcMessageId, error: result.error };
  if (result.trace !== undefined) metadata['trace'] = result.trace;
  return encoder.encode(JSON.stringify({ metadata, kwargs: { result: result.result ?? null } }));
}

/** Decodes an RPC result; throws `LB_MESSAGE_MALFORMED` when a field is missing or wrong. */
export function decodeResult(data: Uint8Array): ResultMessage {
  const what = 'RPC result';
  const { metadata, kwargs } = parseObject(data, what);
  const error = metadata['error'];
  if (typeof error !== 'boolean') throw malformed(what, 'metadata "error" is not a boolean');
  const result: ResultMessage = { id: text(metadata, 'id', what), rpcMessageId: text(metadata, 'rpc_message_id', what), error, result: kwargs['result'] ?? null };
  const trace = metadata['trace'];
  if (typeof trace === 'string') result.trace = trace;
  return result;
}

/** Encodes an event. */
export function encodeEvent(message: EventMessage): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      metadata: { id: message.id, api_name: message.apiName, event_name: message.eventName, version: message.version },
      kwargs: message.kwargs,
    }),
  );
}

/** Decodes an event; throws `LB_MESSAGE_MALFORMED` when a field is missing or wrong. */
export function decodeEvent(data: Uint8Array): EventMessage {
  const what = 'event';
  const { metadata, kwargs } = parseObject(data, what);
  const version = metadata['version'];
  const v = typeof version === 'string' && /^\d+$/.test(version) ? Number(version) : version;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw malformed(what, 'metadata "version" is not a positive integer');
  return {
    id: text(metadata, 'id', what),
    apiName: text(metadata, 'api_name', what),
    eventName: text(metadata, 'event_name', what),
    version: v,
    kwargs,
  };
}
