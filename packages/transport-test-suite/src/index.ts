/**
 * The Lightbus transport conformance suite. A transport package runs it in a few lines:
 *
 * ```ts
 * import { describeEventTransport } from '@lightbus/transport-test-suite';
 * describeEventTransport({ name: 'my-broker', create: (ctx) => createMyEventTransport({...}, ctx) });
 * ```
 *
 * Each `describe*` function registers vitest tests for one role. Tests of capabilities the
 * transport does not declare are skipped (and shown as skipped).
 *
 * @packageDocumentation
 */
export { newContext, eventually, type SuiteContext } from './context.js';
export { describeEventTransport, Collector, type EventBackdoor, type EventSuiteOptions } from './events.js';
export { describeRpcTransport, describeResultTransport, describeSchemaTransport, type RoleSuiteOptions } from './rpc.js';
