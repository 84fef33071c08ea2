import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { quickCheck } from '../src/internal/quick-check.js';
import { configJsonSchema, memoryTransports, type TransportPlugin } from '../src/index.js';

/** A plugin whose options schema uses what the Redis, NATS and AMQP plugins use. */
const pluginLike: TransportPlugin<object> = {
  ...memoryTransports,
  name: 'fake',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      url: { type: 'string', pattern: '^rediss?://', description: 'URL.' },
      servers: { oneOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }] },
      client: { description: 'Anything.' },
      cluster: { type: 'boolean' },
      timeout: { type: 'number', exclusiveMinimum: 0 },
      stream_use: { enum: ['per_api', 'per_event'] },
      max_length: { type: ['integer', 'null'], minimum: 1 },
      block_ms: { type: 'integer', minimum: 10 },
    },
  },
};

const schema = configJsonSchema([memoryTransports, pluginLike]);
const ajv = new Ajv({ allErrors: true, strict: false });
const ajvValidate = ajv.compile(schema);

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD_VALUES: unknown[] = [
  undefined, null, true, false, 0, -1, 0.5, 1, 9, 10, Infinity, -Infinity, NaN, '', 'x', '😀', 'redis://h', 'rediss://h', 'nats://h', 'a.b', 'a-b',
  'per_api', 'per_event', [], ['nats://h'], [''], [1], {}, { memory: {} }, { redis: {}, nats: {} }, { fake: { url: 'redis://h' } },
];

/** A configuration built from the schema's shape, with random omissions and random wrong values. */
function sample(rnd: () => number, s: unknown, depth = 0): unknown {
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  if (rnd() < 0.08 || depth > 6 || typeof s !== 'object' || s === null) return pick(ODD_VALUES);
  const node = s as Record<string, unknown>;
  if (Array.isArray(node['oneOf'])) return sample(rnd, pick(node['oneOf'] as unknown[]), depth + 1);
  if (Array.isArray(node['enum'])) return pick(node['enum'] as unknown[]);
  const type = Array.isArray(node['type']) ? pick(node['type'] as unknown[]) : node['type'];
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = (node['properties'] ?? {}) as Record<string, unknown>;
      for (const [key, sub] of Object.entries(props)) if (rnd() < 0.5) out[key] = sample(rnd, sub, depth + 1);
      const extra = node['additionalProperties'];
      if (typeof extra === 'object' && extra !== null) {
        const names = ['default', 'auth', 'a.b', 'bad name', '1x', 'memory', 'fake', 'redis'];
        const n = Math.floor(rnd() * 3);
        for (let i = 0; i < n; i++) out[pick(names)] = sample(rnd, extra, depth + 1);
      } else if (rnd() < 0.05) out['unknown_key'] = 1;
      return out;
    }
    case 'array':
      return Array.from({ length: Math.floor(rnd() * 3) }, () => sample(rnd, node['items'], depth + 1));
    case 'string':
      return pick(['', 'x', 'svc_1', 'svc name', 'redis://h', 'nats://h', '😀', 'a:b.c-d']);
    case 'integer':
    case 'number':
      return pick([0, 1, 5, 10, 2.5, -3, 1024, 2048]);
    case 'boolean':
      return rnd() < 0.5;
    case 'null':
      return null;
    default:
      return pick(ODD_VALUES);
  }
}

describe('quickCheck (the config fast path) agrees with Ajv', () => {
  it('never says valid when Ajv rejects, nor invalid when Ajv accepts (5000 random configs)', () => {
    const rnd = random(20240611);
    const tally = { valid: 0, invalid: 0, unknown: 0, ajvValid: 0 };
    for (let i = 0; i < 5000; i++) {
      const config = sample(rnd, schema);
      const quick = quickCheck(schema, config);
      const accepted = ajvValidate(config);
      tally[quick]++;
      if (accepted) tally.ajvValid++;
      if (quick === 'valid' && !accepted) expect.fail(`quick valid, Ajv invalid: ${JSON.stringify(config)}`);
      if (quick === 'invalid' && accepted) expect.fail(`quick invalid, Ajv valid: ${JSON.stringify(config)}`);
    }
    // The sample has both outcomes, and the fast path decides nearly every valid one itself.
    expect(tally.ajvValid).toBeGreaterThan(500);
    expect(tally.invalid).toBeGreaterThan(500);
    expect(tally.valid).toBeGreaterThan(tally.ajvValid * 0.9);
  });

  it('accepts ordinary configurations itself', () => {
    const redis = { fake: { url: 'redis://127.0.0.1:6379/9', max_length: null, servers: ['a', 'b'], client: { any: new Map() } } };
    const configs = [
      {},
      { service_name: 'auth_service', process_name: 'host-1:worker' },
      { bus: { schema: { ttl: 60, transport: { memory: {} } } } },
      { apis: { default: { rpc_transport: redis, result_transport: redis, event_transport: redis, rpc_concurrency: 64 } } },
      { apis: { 'auth.users': { validate: { incoming: false }, rpc_timeout: 0.5, max_message_bytes: 4096 }, default: { validate: true } } },
    ];
    for (const config of configs) {
      expect(ajvValidate(config)).toBe(true);
      expect(quickCheck(schema, config)).toBe('valid');
    }
  });

  it('leaves to Ajv what it does not implement or cannot be sure of', () => {
    expect(quickCheck({ $ref: '#/definitions/x' }, 1)).toBe('unknown');
    expect(quickCheck({ format: 'uri' }, 'x')).toBe('unknown');
    expect(quickCheck({ not: { type: 'string' } }, 1)).toBe('unknown');
    expect(quickCheck({ type: 'object', patternProperties: { '^a': {} }, additionalProperties: false }, { b: 1 })).toBe('unknown');
    expect(quickCheck({ type: 'number' }, Infinity)).toBe('unknown');
    expect(quickCheck({ type: 'integer', minimum: 1 }, NaN)).toBe('unknown');
    expect(quickCheck({ enum: [{ a: 1 }] }, { a: 1 })).toBe('unknown');
    expect(quickCheck({ pattern: '(' }, 'x')).toBe('unknown');
    // An unknown keyword cannot save a value another keyword rejects.
    expect(quickCheck({ type: 'string', format: 'uri' }, 1)).toBe('invalid');
  });

  it('applies each keyword as Ajv does', () => {
    expect(quickCheck({ minLength: 2 }, '😀')).toBe('invalid'); // one code point, two UTF-16 units
    expect(quickCheck({ minimum: 5 }, 'short')).toBe('valid'); // numeric keywords ignore strings
    expect(quickCheck({ properties: { a: { type: 'string' } }, required: ['a'] }, { a: undefined })).toBe('invalid');
    expect(quickCheck({ oneOf: [{ type: 'number' }, { type: 'integer' }] }, 1)).toBe('invalid');
    expect(quickCheck({ oneOf: [{ type: 'number' }, { type: 'integer' }] }, 1.5)).toBe('valid');
    expect(quickCheck({ type: ['integer', 'null'] }, null)).toBe('valid');
    expect(quickCheck({ additionalProperties: false, properties: { a: {} } }, { a: 1, b: 2 })).toBe('invalid');
    expect(quickCheck({ propertyNames: { pattern: '^[a-z]+$' } }, { ok: 1, 'Not ok': 2 })).toBe('invalid');
    for (const [s, v] of [
      [{ minLength: 2 }, '😀'],
      [{ oneOf: [{ type: 'number' }, { type: 'integer' }] }, 1],
      [{ properties: { a: { type: 'string' } }, required: ['a'] }, { a: undefined }],
    ] as const) {
      expect(ajv.validate(s, v)).toBe(false);
    }
  });
});
