/**
 * The AMQP wire format: message bodies are JSON in the same `{ metadata, kwargs }` shape as the
 * Lightbus Redis blobs, so a message looks the same whichever broker carried it. Decoding never
 * throws anything but a {@link MalformedMessage} with the reason.
 *
 * @module
 */
import type { EventMessage, Kwargs, ResultMessage, RpcMessage } from '@lightbus/core';

/** A message body that cannot be decoded, with the reason. */
export class MalformedMessage extends Error {
  /** @param reason what is wrong with it */
  constructor(reason: string) {
    super(reason);
    this.name = 'MalformedMessage';
  }
}

/** Content type of every Lightbus message. */
export const CONTENT_TYPE = 'application/json';

function parse(content: Buffer): { metadata: Record<string, unknown>; kwargs: Kwargs } {
  let value: unknown;
  try {
    value = JSON.parse(content.toString('utf8'));
  } catch (error) {
    throw new MalformedMessage(`the body is not JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new MalformedMessage('the body is not a JSON object');
  const { metadata, kwargs } = value as Record<string, unknown>;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new MalformedMessage('"metadata" is missing or not an object');
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs)) throw new MalformedMessage('"kwargs" is missing or not an object');
  return { metadata: metadata as Record<string, unknown>, kwargs: kwargs as Kwargs };
}

function text(metadata: Record<string, unknown>, key: string): string {
  const value = metadata[key];
  if (typeof value !== 'string' || value === '') throw new MalformedMessage(`metadata.${key} is missing or not a non-empty string`);
  return value;
}

/** Encodes an event. */
export function encodeEvent(message: EventMessage): Buffer {
  return Buffer.from(
    JSON.stringify({
      metadata: { id: message.id, api_name: message.apiName, event_name: message.eventName, version: message.version },
      kwargs: message.kwargs,
    }),
  );
}

/** Decodes an event body. */
export function decodeEvent(content: Buffer): EventMessage {
  const { metadata, kwargs } = parse(content);
  const version = metadata['version'] === undefined ? 1 : Number(metadata['version']);
  if (!Number.isInteger(version) || version < 1) throw new MalformedMessage('metadata.version is not a positive integer');
  return { id: text(metadata, 'id'), apiName: text(metadata, 'api_name'), eventName: text(metadata, 'event_name'), version, kwargs };
}

/** Encodes an RPC call (its deadline travels in headers and the message expiration). */
export function encodeCall(message: RpcMessage): Buffer {
  return Buffer.from(
    JSON.stringify({
      metadata: { id: message.id, api_name: message.apiName, procedure_name: message.procedureName, return_path: message.returnPath },
      kwargs: message.kwargs,
    }),
  );
}

/** Decodes an RPC call body. */
export function decodeCall(content: Buffer): Omit<RpcMessage, 'deadline'> {
  const { metadata, kwargs } = parse(content);
  return {
    id: text(metadata, 'id'),
    apiName: text(metadata, 'api_name'),
    procedureName: text(metadata, 'procedure_name'),
    returnPath: text(metadata, 'return_path'),
    kwargs,
  };
}

/** Encodes an RPC result. */
export function encodeResult(result: ResultMessage): Buffer {
  const metadata: Record<string, unknown> = { error: result.error, id: result.id, rpc_message_id: result.rpcMessageId };
  if (result.trace !== undefined) metadata['trace'] = result.trace;
  return Buffer.from(JSON.stringify({ metadata, kwargs: { result: result.result } }));
}

/** Decodes an RPC result body. */
export function decodeResult(content: Buffer): ResultMessage {
  const { metadata, kwargs } = parse(content);
  if (typeof metadata['error'] !== 'boolean') throw new MalformedMessage('metadata.error is missing or not a boolean');
  const result: ResultMessage = {
    id: text(metadata, 'id'),
    rpcMessageId: text(metadata, 'rpc_message_id'),
    error: metadata['error'],
    result: kwargs['result'] === undefined ? null : kwargs['result'],
  };
  if (typeof metadata['trace'] === 'string') result.trace = metadata['trace'];
  return result;
}
