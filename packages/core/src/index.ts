/**
 * `@lightbus/core`: APIs, RPCs and events between backend services.
 *
 * - {@link defineApi}, {@link event}, {@link rpc}, {@link Type}, {@link Types}: define an API once,
 *   get types, schema and validation.
 * - {@link createBus} (alias `lightbus.create()`): the client and the worker runtime.
 * - The transport interfaces ({@link RpcTransport}, {@link ResultTransport},
 *   {@link EventTransport}, {@link SchemaTransport}) and the in-memory transports.
 * - {@link LightbusError} and its family, with stable {@link ErrorCodes}.
 *
 * @packageDocumentation
 */
export * from './api.js';
export * from './bus.js';
export * from './bus-types.js';
export * from './codec.js';
export * from './config.js';
export * from './errors.js';
export * from './logger.js';
export * from './messages.js';
export * from './naming.js';
export * from './schema.js';
export * from './types.js';
export * from './transports/types.js';
export * from './transports/memory.js';
export { TransportRegistry } from './transports/registry.js';
export { Notifier, Semaphore, sleep } from './internal/async.js';
