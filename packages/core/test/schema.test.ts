import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defineApi, ErrorCodes, event, rpc, SchemaValidator, Type, Types } from '../src/index.js';
import { authApi } from './fixtures.js';

// The value Python Lightbus stored under `schema:my_company.auth` (recorded with MONITOR,
// ../shared/protocol/traces-jsonl/py-py-01-worker-start.jsonl).
const pythonSchema = JSON.parse(readFileSync(new URL('./fixtures/python-my_company.auth.schema.json', import.meta.url), 'utf8')) as unknown;

describe('schema generation', () => {
  it("equals, key for key, the schema Python stores for the seeds' AuthApi", () => {
    expect(authApi.schema).toEqual(pythonSchema);
  });

  it('leaves `required` out when empty and writes defaults', () => {
    const api = defineApi({
      name: 'prefs',
      events: { changed: event({ parameters: { admin: Types.Default(Type.Boolean(), false), note: Type.Optional(Type.String()) } }) },
      rpcs: { ping: rpc({ parameters: {}, response: Type.Null() }) },
    });
    expect(api.schema).toEqual({
      events: {
        changed: {
          parameters: {
            $schema: 'http://json-schema.org/draft-07/schema#',
            type: 'object',
            additionalProperties: false,
            properties: { admin: { type: 'boolean', default: false }, note: { type: 'string' } },
            title: 'Event prefs.changed parameters',
          },
        },
      },
      rpcs: {
        ping: {
          parameters: {
            $schema: 'http://json-schema.org/draft-07/schema#',
            type: 'object',
            additionalProperties: false,
            properties: {},
            title: 'RPC prefs.ping() parameters',
          },
          response: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'null', title: 'RPC prefs.ping() response' },
        },
      },
    });
  });

  it('rejects bad API names and clashing members', () => {
    expect(() => defineApi({ name: 'bad name' })).toThrow(expect.objectContaining({ code: ErrorCodes.API_DEFINITION_INVALID }));
    expect(() => defineApi({ name: 'default' })).toThrow(/fallback/);
    expect(() =>
      defineApi({ name: 'x', events: { userCreated: event({ parameters: [] }) }, rpcs: { user_created: rpc({ parameters: [] }) } }),
    ).toThrow(/share the wire name "user_created"/);
  });
});

describe('validation', () => {
  const validator = new SchemaValidator();
  const schema = authApi.schema.rpcs['check_password']!.parameters;

  it('names the JSON path of each problem', () => {
    try {
      validator.validate(schema, { username: ['x'], extra: 1 }, 'parameters for RPC my_company.auth.check_password()');
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: ErrorCodes.VALIDATION_FAILED });
      const issues = (error as { issues: Array<{ path: string; message: string }> }).issues;
      expect(issues).toEqual(
        expect.arrayContaining([
          { path: '$.username', message: 'must be string' },
          { path: '$.password', message: 'is required but missing' },
          { path: '$.extra', message: 'is not an allowed parameter or property' },
        ]),
      );
      expect((error as Error).message).toContain('check_password()');
    }
  });

  it('gives nested paths for arrays and objects', () => {
    const s = defineApi({
      name: 'orders',
      rpcs: { place: rpc({ parameters: { items: Type.Array(Type.Object({ price: Type.Number() })) } }) },
    }).schema.rpcs['place']!.parameters;
    expect(() => validator.validate(s, { items: [{ price: 1 }, { price: 'x' }] }, 'x')).toThrow(/\$\.items\[1\]\.price must be number/);
  });

  it('does not check formats, as Python does not', () => {
    const s = { type: 'object', properties: { at: { type: 'string', format: 'date-time' } } };
    expect(() => validator.validate(s, { at: '2026-11-21 10:00' }, 'x')).not.toThrow();
  });
});

describe('class style', () => {
  it('gives the same schema as the object style', async () => {
    const { classAuthApi, objectAuthApi } = await import('./fixtures.js');
    expect(classAuthApi.schema).toEqual(objectAuthApi.schema);
    expect(classAuthApi.name).toBe('auth');
  });
});

describe('numbers that JSON cannot carry', () => {
  it('Infinity and NaN (1e400 on the wire parses to Infinity) are not integers or numbers', () => {
    const validator = new SchemaValidator();
    const schema = { type: 'object', properties: { n: { type: 'integer' }, x: { type: 'number' } } };
    for (const bad of [Infinity, -Infinity, NaN]) {
      expect(() => validator.validate(schema, { n: bad }, 'parameters')).toThrow(/\$\.n must be integer/);
      expect(() => validator.validate(schema, { x: bad }, 'parameters')).toThrow(/\$\.x must be number/);
    }
    validator.validate(schema, { n: 1, x: 1.5 }, 'parameters');
  });
});
