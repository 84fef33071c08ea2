import { describe, expect, it } from 'vitest';
import { createBus, ErrorCodes, LightbusError, silentLogger, TRANSPORT_SPECIFICATION_VERSION, type TransportPlugin } from '../src/index.js';
import { authApi } from './fixtures.js';

/** A transport whose broker stopped answering (a paused server, a half-open connection): nothing ever settles. */
const unresponsive: TransportPlugin = {
  specificationVersion: TRANSPORT_SPECIFICATION_VERSION,
  name: 'unresponsive',
  createRpcTransport: () => ({
    capabilities: { deadlines: true },
    call: () => new Promise<void>(() => undefined),
    consume: async function* () {},
    close: async () => undefined,
  }),
  createResultTransport: () => ({
    capabilities: { schemes: ['unresponsive'] },
    prepare: async () => ({ returnPath: 'unresponsive://x', wait: () => new Promise(() => undefined), cancel: () => new Promise<void>(() => undefined) }),
    send: async () => undefined,
    close: async () => undefined,
  }),
};

describe('RPC deadlines', () => {
  it('a call fails with LB_RPC_TIMEOUT at its deadline even when the transport never answers', async () => {
    const bus = createBus({
      apis: [authApi],
      transports: [unresponsive as TransportPlugin<never>],
      logger: silentLogger,
      config: { apis: { default: { rpc_transport: { unresponsive: {} }, result_transport: { unresponsive: {} } } } },
    });
    const started = Date.now();
    const error = await bus.api(authApi.name).call('check_password', { username: 'a', password: 'b' }, { timeout: 0.2 }).catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(LightbusError.isInstance(error) && error.code).toBe(ErrorCodes.RPC_TIMEOUT);
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(2000); // the deadline plus a small grace, not forever
    await bus.close({ timeoutMs: 100 });
  });

  it('a call abandoned at its deadline cancels its pending result at once', async () => {
    let cancels = 0;
    const recording: TransportPlugin = {
      ...unresponsive,
      name: 'recording',
      createResultTransport: () => ({
        capabilities: { schemes: ['recording'] },
        prepare: async () => ({
          returnPath: 'recording://x',
          wait: () => new Promise(() => undefined),
          cancel: () => {
            cancels++;
            return new Promise<void>(() => undefined); // the broker does not answer this either
          },
        }),
        send: async () => undefined,
        close: async () => undefined,
      }),
    };
    const bus = createBus({
      apis: [authApi],
      transports: [recording as TransportPlugin<never>],
      logger: silentLogger,
      config: { apis: { default: { rpc_transport: { recording: {} }, result_transport: { recording: {} } } } },
    });
    const error = await bus.api(authApi.name).call('check_password', { username: 'a', password: 'b' }, { timeout: 0.2 }).catch((e: unknown) => e);
    expect(LightbusError.isInstance(error) && error.code).toBe(ErrorCodes.RPC_TIMEOUT);
    expect(cancels).toBe(1);
    await bus.close({ timeoutMs: 100 });
  });
});
