/**
 * The API the chaos workers serve and listen to. Each scenario builds it under its own unique
 * name (`lbchaos_<id>.chaos`), so runs never see each other's streams and queues.
 *
 * @module
 */
import { defineApi, event, rpc, Type } from '@lightbus/core';

/** Builds the chaos API under `name`. */
export function chaosApi(name: string) {
  return defineApi({
    name,
    version: 1,
    events: {
      /** One counted event: `seq` identifies it; `payload` is anything (the fuzzer fills it). */
      tick: event({ parameters: { seq: Type.Integer(), payload: Type.Optional(Type.Unknown()) } }),
    },
    rpcs: {
      /** Returns its argument. */
      echo: rpc({ parameters: { value: Type.String() }, response: Type.String() }),
      /** Sleeps `ms`, then returns `ms` (the stale-result scenario). */
      slow: rpc({ parameters: { ms: Type.Integer({ minimum: 0 }) }, response: Type.Integer() }),
      /** Validates strictly: `count` must be a non-negative integer. */
      strict: rpc({ parameters: { count: Type.Integer({ minimum: 0 }) }, response: Type.Integer() }),
    },
  });
}

/** The chaos API's type. */
export type ChaosApi = ReturnType<typeof chaosApi>;

/** The RPC implementation the worker registers (also used by producers, which never serve). */
export const chaosImplementation = {
  echo: ({ value }: { value: string }) => value,
  slow: async ({ ms }: { ms: number }) => {
    await new Promise((r) => setTimeout(r, ms));
    return ms;
  },
  strict: ({ count }: { count: number }) => count,
};
