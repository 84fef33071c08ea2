// Type-level tests: they run under `vitest --typecheck` (tsc). A `@ts-expect-error` that stops
// erroring fails the run, so each of these proves the compiler rejects the bad call.
import { describe, expectTypeOf, it } from 'vitest';
import { createBus, type ApiImplementation, type EventContext } from '../src/index.js';
import { authApi, shopApi } from './fixtures.js';

const bus = createBus({ apis: [authApi, shopApi] });

describe('typed calls', () => {
  it('accepts the right parameters and returns the typed result', () => {
    expectTypeOf(bus.my_company.auth.checkPassword({ username: 'a', password: 'b' })).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(bus.shop.nextDelivery({ after: new Date() })).toEqualTypeOf<Promise<Date>>();
  });

  it('rejects a wrong parameter name', () => {
    // @ts-expect-error `pasword` is not a parameter of check_password
    void bus.my_company.auth.checkPassword({ username: 'a', pasword: 'b' });
  });

  it('rejects a wrong parameter type', () => {
    // @ts-expect-error username must be a string
    void bus.my_company.auth.checkPassword({ username: 1, password: 'b' });
  });

  it('rejects a missing required parameter', () => {
    // @ts-expect-error password is required
    void bus.my_company.auth.checkPassword({ username: 'a' });
  });

  it('rejects an unknown RPC or API', () => {
    // @ts-expect-error no such RPC
    void bus.my_company.auth.checkPasswrd({ username: 'a', password: 'b' });
    // @ts-expect-error no such API
    void bus.billing;
  });

  it('makes parameters with defaults optional for callers and present for handlers', () => {
    void bus.shop.orderPlaced.fire({ orderId: 'o', placedAt: new Date(), total: 1n });
    bus.shop.orderPlaced.listen(
      (params, event) => {
        expectTypeOf(params.gift).toEqualTypeOf<boolean>();
        expectTypeOf(params.total).toEqualTypeOf<bigint>();
        expectTypeOf(event).toEqualTypeOf<EventContext>();
      },
      { listenerName: 'typed' },
    );
    // @ts-expect-error total must be a bigint
    void bus.shop.orderPlaced.fire({ orderId: 'o', placedAt: new Date(), total: 'x' });
  });

  it('requires a listener name', () => {
    // @ts-expect-error listenerName is required
    bus.shop.orderPlaced.listen(() => undefined, {});
  });
});

describe('implementations', () => {
  it('types the implementation of registerApi', () => {
    const impl: ApiImplementation<typeof authApi> = {
      checkPassword: ({ username, password }) => username === 'admin' && password === 'secret',
      echo: ({ value }) => value,
      fail: ({ message }) => message,
    };
    void impl;
    // @ts-expect-error checkPassword must return a boolean
    const wrong: ApiImplementation<typeof authApi> = { checkPassword: () => 'yes', echo: () => 1, fail: () => 1 };
    void wrong;
    // @ts-expect-error the implementation must have every RPC
    bus.registerApi(authApi, { checkPassword: () => true });
  });
});

describe('class-style APIs', () => {
  it('types callers from the class and needs no implementation when handlers come with it', async () => {
    const { classAuthApi } = await import('./fixtures.js');
    const b = createBus({ apis: [classAuthApi] });
    expectTypeOf(b.auth.checkPassword({ username: 'a', password: 'b' })).toEqualTypeOf<Promise<boolean>>();
    // @ts-expect-error wrong parameter
    void b.auth.checkPassword({ user: 'a', password: 'b' });
    b.registerApi(classAuthApi);
  });
});
