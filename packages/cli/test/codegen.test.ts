import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defineApi, event, rpc, Type, Types, type AnyApi, type ApiSchema } from '@lightbus/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiIdentifier, generateDeclarationFiles, generateDeclarations, schemaToTypeBox } from '../src/codegen.js';

const run = promisify(execFile);
const here = import.meta.dirname;
const tmpRoot = join(here, '..', '.tmp', `codegen-${process.pid}-${Date.now()}`);

/** A test API using every builder codegen knows. */
const shopApi = defineApi({
  name: 'shop',
  events: {
    orderPlaced: event({
      parameters: {
        orderId: Type.String({ minLength: 1 }),
        quantity: Type.Integer({ minimum: 1 }),
        price: Type.Number(),
        express: Type.Boolean(),
        note: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        status: Type.Union([Type.Literal('new'), Type.Literal('paid')]),
        placedAt: Types.DateTime(),
        currency: Types.Default(Type.String(), 'EUR'),
        lines: Type.Array(Type.Object({ sku: Type.String(), count: Type.Integer(), gift: Type.Optional(Type.Boolean()) })),
        tags: Type.Record(Type.String(), Type.Number()),
        extra: Type.Unknown(),
      },
    }),
    // A wire name that does not round-trip through camelCase → snake_case.
    legacyEvent: event({ name: 'LegacyEVENT_v2', parameters: ['anything'] }),
  },
  rpcs: {
    checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }),
    listOrders: rpc({
      parameters: { limit: Type.Optional(Type.Integer()) },
      response: Type.Array(Type.Object({ id: Type.String(), total: Type.Number() })),
    }),
  },
});

/** A schema as a Python service publishes it (from the recorded traffic, plus typed parameters). */
const pythonSchemas: Record<string, ApiSchema> = {
  'my_company.auth': {
    events: {
      user_registered: {
        parameters: {
          $schema: 'http://json-schema.org/draft-07/schema#',
          type: 'object',
          additionalProperties: false,
          properties: { username: { type: 'string' }, email: {}, is_admin: { type: 'boolean', default: false } },
          required: ['username', 'email'],
          title: 'Event my_company.auth.user_registered parameters',
        },
      },
    },
    rpcs: {
      check_password: {
        parameters: {
          $schema: 'http://json-schema.org/draft-07/schema#',
          type: 'object',
          additionalProperties: false,
          properties: { username: { type: 'string' }, password: { type: 'string' } },
          required: ['username', 'password'],
          title: 'RPC my_company.auth.check_password() parameters',
        },
        response: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'boolean', title: 'RPC my_company.auth.check_password() response' },
      },
    },
  },
  // Python's `def find(self, limit: int = 10, owner: str = None)`: a default that does not fit its type.
  'py.legacy': {
    events: {},
    rpcs: {
      find: {
        parameters: {
          $schema: 'http://json-schema.org/draft-07/schema#',
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', default: 10 }, owner: { type: 'string', default: null } },
          title: 'RPC py.legacy.find() parameters',
        },
        response: { $schema: 'http://json-schema.org/draft-07/schema#', title: 'RPC py.legacy.find() response' },
      },
    },
  },
  'internal.state': { events: {}, rpcs: {} },
};

function tsc(): string {
  const require = createRequire(import.meta.url);
  return join(require.resolve('typescript/package.json'), '..', 'bin', 'tsc');
}

beforeAll(() => mkdirSync(tmpRoot, { recursive: true }));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

describe('schemaToTypeBox', () => {
  it('maps each JSON Schema kind to its builder', () => {
    expect(schemaToTypeBox({})).toBe('Type.Unknown()');
    expect(schemaToTypeBox({ type: 'string', maxLength: 3 })).toBe('Type.String({ maxLength: 3 })');
    expect(schemaToTypeBox({ type: 'integer' })).toBe('Type.Integer()');
    expect(schemaToTypeBox({ type: 'number' })).toBe('Type.Number()');
    expect(schemaToTypeBox({ type: 'boolean' })).toBe('Type.Boolean()');
    expect(schemaToTypeBox({ type: 'null' })).toBe('Type.Null()');
    expect(schemaToTypeBox({ type: 'array', items: { type: 'string' } })).toBe('Type.Array(Type.String())');
    expect(schemaToTypeBox({ enum: ['a', 'b'] })).toBe('Type.Union([Type.Literal("a"), Type.Literal("b")])');
    expect(schemaToTypeBox({ type: ['string', 'null'] })).toBe('Type.Union([Type.String(), Type.Null()])');
    expect(schemaToTypeBox({ anyOf: [{ type: 'string' }, { type: 'integer' }] })).toBe('Type.Union([Type.String(), Type.Integer()])');
    expect(schemaToTypeBox({ type: 'object' })).toBe('Type.Record(Type.String(), Type.Unknown())');
    expect(schemaToTypeBox({ type: 'object', additionalProperties: { type: 'number' } })).toBe('Type.Record(Type.String(), Type.Number())');
    expect(schemaToTypeBox({ type: 'string', format: 'date-time' })).toBe('Types.DateTime()');
  });

  it('marks properties that are not required as optional, and keeps additionalProperties: false', () => {
    const code = schemaToTypeBox({ type: 'object', properties: { a: { type: 'string' }, b: {} }, required: ['a'], additionalProperties: false });
    expect(code).toContain('a: Type.String(),');
    expect(code).toContain('b: Type.Optional(Type.Unknown()),');
    expect(code).toContain('additionalProperties: false');
  });

  it('inlines local $refs and stops at recursive ones', () => {
    const schema = {
      type: 'object',
      properties: { node: { $ref: '#/definitions/Node' } },
      required: ['node'],
      definitions: { Node: { type: 'object', properties: { name: { type: 'string' }, child: { $ref: '#/definitions/Node' } }, required: ['name'] } },
    };
    const code = schemaToTypeBox(schema);
    expect(code).toContain('name: Type.String()');
    // The recursive reference is cut at its second occurrence (unknown), so the type stays finite.
    expect(code).toMatch(/node: Type\.Object\(\{\s+name: Type\.String\(\),\s+child: Type\.Optional\(Type\.Unknown\(\)\)/);
  });

  it('uses Types.Default only for a default that fits the type', () => {
    const schema = (properties: Record<string, unknown>) => ({ type: 'object', properties, additionalProperties: false });
    const code = generateDeclarations({
      py: {
        events: {},
        rpcs: {
          find: {
            parameters: schema({ limit: { type: 'integer', default: 10 }, owner: { type: 'string', default: null }, tag: { anyOf: [{ type: 'string' }, { type: 'null' }], default: null } }),
            response: {},
          },
        },
      },
    });
    expect(code).toContain('limit: Types.Default(Type.Integer(), 10),');
    expect(code).toContain('owner: Type.Optional(Type.String({ default: null })),');
    expect(code).toContain('tag: Types.Default(Type.Union([Type.String(), Type.Null()]), null),');
  });

  it('names API exports in camelCase', () => {
    expect(apiIdentifier('auth')).toBe('authApi');
    expect(apiIdentifier('my_company.auth')).toBe('myCompanyAuthApi');
  });
});

describe('generated definitions', () => {
  const file = join(tmpRoot, 'generated.ts');

  beforeAll(() => {
    writeFileSync(file, generateDeclarations({ shop: shopApi.schema, ...pythonSchemas }, { source: 'test' }));
  });

  it('rebuild exactly the schema they were generated from', async () => {
    const mod = (await import(file)) as Record<string, AnyApi>;
    expect(mod['shopApi']!.schema).toEqual(shopApi.schema);
    expect(mod['myCompanyAuthApi']!.schema).toEqual(pythonSchemas['my_company.auth']);
    expect(mod['pyLegacyApi']!.schema).toEqual(pythonSchemas['py.legacy']);
  });

  it('keep the wire names and use camelCase members', async () => {
    const mod = (await import(file)) as Record<string, AnyApi>;
    const api = mod['shopApi']!;
    expect(Object.keys(api.events).sort()).toEqual(['LegacyEVENTV2', 'orderPlaced']);
    expect(api.eventInfo.get('orderPlaced')?.wireName).toBe('order_placed');
    expect([...api.eventInfo.values()].map((i) => i.wireName)).toContain('LegacyEVENT_v2');
    expect(api.rpcInfo.get('checkPassword')?.wireName).toBe('check_password');
  });

  it('leave out internal APIs unless asked', async () => {
    const mod = (await import(file)) as Record<string, unknown>;
    expect(mod['internalStateApi']).toBeUndefined();
    expect(generateDeclarations(pythonSchemas, { includeInternal: true })).toContain('export const internalStateApi = defineApi({');
  });

  it('can be written as one module per API with an index', () => {
    const files = generateDeclarationFiles({ shop: shopApi.schema, ...pythonSchemas });
    expect([...files.keys()].sort()).toEqual(['index.ts', 'my_company.auth.ts', 'py.legacy.ts', 'shop.ts']);
    expect(files.get('index.ts')).toContain("import { shopApi } from './shop.js';");
  });

  it('type-check calls: tsc accepts correct ones and rejects a wrong parameter', async () => {
    writeFileSync(
      join(tmpRoot, 'consumer-good.ts'),
      `import { createBus } from '@lightbus/core';
import { shopApi, myCompanyAuthApi } from './generated.js';
const bus = createBus({ apis: [shopApi, myCompanyAuthApi] });
export async function good(): Promise<void> {
  const ok: boolean = await bus.shop.checkPassword({ username: 'admin', password: 'secret' });
  const orders: Array<{ id: string; total: number }> = await bus.shop.listOrders({});
  const py: boolean = await bus.my_company.auth.checkPassword({ username: 'a', password: 'b' });
  bus.shop.orderPlaced.listen((p) => {
    const quantity: number = p.quantity;
    const currency: string = p.currency;
    const placedAt: Date = p.placedAt;
    const status: 'new' | 'paid' = p.status;
    void [quantity, currency, placedAt, status];
  }, { listenerName: 'typed' });
  bus.my_company.auth.userRegistered.listen((p) => { const admin: boolean = p.is_admin; void admin; }, { listenerName: 'py' });
  void [ok, orders, py];
}
`,
    );
    writeFileSync(
      join(tmpRoot, 'consumer-bad.ts'),
      `import { createBus } from '@lightbus/core';
import { shopApi } from './generated.js';
const bus = createBus({ apis: [shopApi] });
export async function bad(): Promise<void> {
  await bus.shop.checkPassword({ username: 'admin', password: 123 });
}
`,
    );
    writeFileSync(
      join(tmpRoot, 'tsconfig.json'),
      JSON.stringify({ extends: '../../../../tooling/tsconfig.base.json', compilerOptions: { noEmit: true, rootDir: '.' }, include: ['*.ts'] }),
    );
    const result = await run(process.execPath, [tsc(), '-p', join(tmpRoot, 'tsconfig.json'), '--pretty', 'false'], { cwd: tmpRoot }).then(
      () => ({ stdout: '', code: 0 }),
      (error: { stdout: string; code: number }) => ({ stdout: error.stdout, code: error.code }),
    );
    const errors = result.stdout.split('\n').filter((l) => l.includes('error TS'));
    expect(errors.filter((l) => !l.startsWith('consumer-bad.ts'))).toEqual([]);
    expect(result.code).not.toBe(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^consumer-bad\.ts\(5,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/);
  }, 60_000);
});
