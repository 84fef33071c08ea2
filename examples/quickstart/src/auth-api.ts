// The contract of the auth API. The auth service owns it; other services import it (or generate
// it with `lightbus codegen`) to get typed calls and listeners.
import { defineApi, event, rpc, Type } from '@lightbus/core';

export const authApi = defineApi({
  name: 'auth',
  events: {
    userRegistered: event({ parameters: { username: Type.String(), email: Type.String() } }),
  },
  rpcs: {
    checkPassword: rpc({
      parameters: { username: Type.String(), password: Type.String() },
      response: Type.Boolean(),
    }),
  },
});
