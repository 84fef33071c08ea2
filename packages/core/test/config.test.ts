import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, createBus, ErrorCodes, loadConfig, memoryTransports, resolveApiConfig, silentLogger } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lightbus-config-'));

describe('loadConfig', () => {
  it('reads YAML, applies per-API options over default, and env over the file', () => {
    const file = join(dir, 'lightbus.yaml');
    writeFileSync(
      file,
      [
        'service_name: from_file',
        'apis:',
        '  default:',
        '    rpc_timeout: 2',
        '    event_transport: { memory: { broker: shared } }',
        '  payments:',
        '    rpc_timeout: 9',
        '    validate: { incoming: false }',
      ].join('\n'),
    );
    const config = loadConfig({ file, env: { LIGHTBUS_SERVICE_NAME: 'from_env', LIGHTBUS_PROCESS_NAME: 'worker-1' } });
    expect(config.service_name).toBe('from_env');
    expect(config.process_name).toBe('worker-1');
    const payments = resolveApiConfig(config, 'payments');
    expect(payments.rpcTimeoutMs).toBe(9000);
    expect(payments.validateIncoming).toBe(false);
    expect(payments.validateOutgoing).toBe(true);
    expect(payments.transports.event).toEqual({ memory: { broker: 'shared' } });
    expect(resolveApiConfig(config, 'other').rpcTimeoutMs).toBe(2000);
    expect(resolveApiConfig(config, 'other').transports.rpc).toEqual({ memory: {} });
  });

  it('reads the file named by LIGHTBUS_CONFIG (JSON too)', () => {
    const file = join(dir, 'lightbus.json');
    writeFileSync(file, JSON.stringify({ process_name: 'json_proc' }));
    expect(loadConfig({ env: { LIGHTBUS_CONFIG: file } }).process_name).toBe('json_proc');
  });

  it('rejects a bad config with the path of each bad key and what was expected', () => {
    const bad = {
      apis: {
        default: { rpc_timeout: 'soon', event_transprt: { memory: {} } },
        auth: { rpc_transport: { redis: {}, nats: {} } },
      },
    };
    let message = '';
    try {
      loadConfig({ config: bad as never });
    } catch (error) {
      expect(error).toMatchObject({ code: ErrorCodes.CONFIG_INVALID });
      message = (error as Error).message;
    }
    expect(message).toContain('apis.default.rpc_timeout: must be number');
    expect(message).toContain('apis.default.event_transprt: is not a known option');
    expect(message).toContain('apis.auth.rpc_transport: must name exactly one transport');
  });

  it('checks transport options against the plugin schema', () => {
    expect(() => loadConfig({ config: { apis: { default: { event_transport: { memory: { brokr: 'x' } } } } }, plugins: [memoryTransports] })).toThrow(
      /apis\.default\.event_transport\.memory\.brokr: is not a known option/,
    );
  });

  it('says which file is missing or unparsable', () => {
    expect(() => loadConfig({ file: join(dir, 'nope.yaml') })).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_NOT_FOUND }));
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'apis: [unclosed');
    expect(() => loadConfig({ file: broken })).toThrow(/not valid YAML/);
  });

  it('publishes a JSON Schema of the config', () => {
    const schema = configJsonSchema([memoryTransports]) as { properties: Record<string, unknown> };
    expect(Object.keys(schema.properties)).toEqual(['service_name', 'process_name', 'bus', 'apis']);
  });
});

describe('names', () => {
  it('defaults the service name to the package name, stable across restarts', () => {
    const a = createBus({ logger: silentLogger });
    const b = createBus({ logger: silentLogger });
    expect(a.serviceName).toBe('core');
    expect(b.serviceName).toBe(a.serviceName);
  });

  it('fails on an unknown transport with what to install', async () => {
    const bus = createBus({ logger: silentLogger, config: { apis: { default: { event_transport: { carrier_pigeon: {} } } } } });
    await expect(bus.transport('x', 'event')).rejects.toMatchObject({
      code: ErrorCodes.TRANSPORT_UNKNOWN,
      message: expect.stringContaining('@lightbus/carrier_pigeon') as unknown,
    });
    await bus.close();
  });
});
