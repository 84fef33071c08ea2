import { Api, defineApi, event, rpc, Type, Types } from '../src/index.js';

/** The seeds' AuthApi, as in the recorded Python traces (`my_company.auth`). */
export const authApi = defineApi({
  name: 'my_company.auth',
  events: {
    userRegistered: event({ parameters: { username: Type.String(), email: Type.String() } }),
  },
  rpcs: {
    checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }),
    echo: rpc({ parameters: ['value'] }),
    fail: rpc({ parameters: { message: Type.String() } }),
  },
});

/** An API with dates, defaults and bigints. */
export const shopApi = defineApi({
  name: 'shop',
  version: 2,
  events: {
    orderPlaced: event({
      parameters: {
        orderId: Type.String(),
        placedAt: Types.DateTime(),
        total: Types.BigInt(),
        gift: Types.Default(Type.Boolean(), false),
      },
    }),
  },
  rpcs: {
    nextDelivery: rpc({ parameters: { after: Types.DateTime() }, response: Types.DateTime() }),
    slow: rpc({ parameters: { ms: Type.Number() }, response: Type.Number() }),
  },
});

/** The seeds' AuthApi in the class style (close to Python's `class AuthApi(Api)`). */
export class AuthApi extends Api {
  static readonly meta = { name: 'auth' } as const;
  userRegistered = event({ parameters: { username: Type.String(), email: Type.String() } });
  checkPassword = rpc(
    { parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() },
    ({ username, password }) => username === 'admin' && password === 'secret',
  );
}
export const classAuthApi = defineApi(AuthApi);

/** The same API in the object style, with the implementation given to registerApi. */
export const objectAuthApi = defineApi({
  name: 'auth',
  events: { userRegistered: event({ parameters: { username: Type.String(), email: Type.String() } }) },
  rpcs: { checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }) },
});
