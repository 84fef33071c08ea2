import { describe, expect, it } from 'vitest';
import { castFromJson, ErrorCodes, toJson, Type, Types } from '../src/index.js';

describe('toJson', () => {
  it('converts values JSON cannot carry as the protocol says', () => {
    expect(
      toJson({
        at: new Date('2026-01-02T03:04:05.678Z'),
        big: 2n ** 70n,
        bytes: new Uint8Array([0, 1, 255]),
        set: new Set(['a', 'b']),
        map: new Map([['k', new Date(0)]]),
        skip: undefined,
        nan: Number.NaN,
      }),
    ).toEqual({
      at: '2026-01-02T03:04:05.678Z',
      big: '1180591620717411303424',
      bytes: 'AAH/',
      set: ['a', 'b'],
      map: { k: '1970-01-01T00:00:00.000Z' },
      nan: null,
    });
  });

  it('refuses cycles and functions with the path of the value', () => {
    const a: Record<string, unknown> = {};
    a['self'] = a;
    expect(() => toJson({ a })).toThrow(expect.objectContaining({ code: ErrorCodes.VALIDATION_FAILED, message: expect.stringContaining('$.a.self') as unknown }));
    expect(() => toJson({ f: () => 1 })).toThrow(/\$\.f/);
  });

  it('keeps __proto__ keys as plain data', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
    const out = toJson(parsed) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.keys(out)).toContain('__proto__');
  });
});

describe('castFromJson', () => {
  it('rebuilds typed values following the schema', () => {
    const schema = Type.Object({
      at: Types.DateTime(),
      big: Types.BigInt(),
      bytes: Types.Bytes(),
      tags: Types.Set(Type.String()),
      prices: Types.Map(Types.BigInt()),
      nested: Type.Array(Type.Object({ when: Types.DateTime() })),
    });
    const out = castFromJson(
      { at: '2026-01-02T03:04:05.678Z', big: '-42', bytes: 'AAH/', tags: ['a'], prices: { x: '7' }, nested: [{ when: '2026-01-01T00:00:00Z' }] },
      schema,
    ) as Record<string, unknown>;
    expect(out['at']).toEqual(new Date('2026-01-02T03:04:05.678Z'));
    expect(out['big']).toBe(-42n);
    expect(out['bytes']).toEqual(new Uint8Array([0, 1, 255]));
    expect(out['tags']).toEqual(new Set(['a']));
    expect(out['prices']).toEqual(new Map([['x', 7n]]));
    expect((out['nested'] as Array<{ when: Date }>)[0]!.when).toBeInstanceOf(Date);
  });

  it('hands back the very object when the schema has nothing to cast, and still finds marks deep down', () => {
    const plain = Type.Object({ n: Type.Number(), tags: Type.Array(Type.Object({ name: Type.String() })) });
    const value = { n: 1, tags: [{ name: 'a' }] };
    expect(castFromJson(value, plain)).toBe(value);
    expect(castFromJson(value, plain)).toBe(value);
    const deep = Type.Object({ n: Type.Number(), tags: Type.Array(Type.Object({ at: Types.DateTime() })) });
    const out = castFromJson({ n: 1, tags: [{ at: '2026-01-01T00:00:00Z' }] }, deep) as { tags: Array<{ at: unknown }> };
    expect(out.tags[0]!.at).toEqual(new Date('2026-01-01T00:00:00Z'));
  });

  it('leaves values that do not fit unchanged (validation reports them)', () => {
    expect(castFromJson('not a date', Types.DateTime())).toBe('not a date');
    expect(castFromJson('1.5', Types.BigInt())).toBe('1.5');
  });
});

describe('jsonSizeUpperBound', () => {
  it('is never below the real encoded size', async () => {
    const { jsonSizeUpperBound } = await import('../src/index.js');
    const samples: unknown[] = [
      { a: 'plain', n: -1.5e-300, b: true, z: null },
      { quotes: '"\\\n\t\u0001', unicode: 'é漢字😀', nested: [[{ deep: ['x'] }], {}] },
      { big: 'x'.repeat(10_000), list: Array.from({ length: 100 }, (_, i) => ({ i, s: String(i) })) },
    ];
    for (const sample of samples) {
      expect(jsonSizeUpperBound(sample)).toBeGreaterThanOrEqual(Buffer.byteLength(JSON.stringify(sample)));
    }
  });

  it('refuses a message over the limit before anything is sent', async () => {
    const { createBus, defineApi, event, Type, ErrorCodes, silentLogger } = await import('../src/index.js');
    const api = defineApi({ name: 'sizes', events: { big: event({ parameters: { blob: Type.String() } }) } });
    const bus = createBus({ apis: [api], logger: silentLogger, config: { apis: { default: { max_message_bytes: 2048, event_transport: { memory: { broker: 'sizes-test' } } } } } });
    bus.registerApi(api);
    await expect(bus.sizes.big.fire({ blob: 'x'.repeat(300) })).resolves.toBeUndefined(); // bound says "maybe", exact says fine
    await expect(bus.sizes.big.fire({ blob: 'x'.repeat(5000) })).rejects.toMatchObject({ code: ErrorCodes.MESSAGE_TOO_LARGE });
    await bus.close();
  });
});
