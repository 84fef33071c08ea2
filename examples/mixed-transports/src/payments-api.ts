// The contract: an RPC to charge a card, and an event once a charge went through.
import { defineApi, event, rpc, Type } from '@lightbus/core';

export const paymentsApi = defineApi({
  name: 'payments',
  rpcs: {
    charge: rpc({
      parameters: { orderId: Type.String(), amountCents: Type.Integer({ minimum: 1 }) },
      response: Type.Object({ chargeId: Type.String(), amountCents: Type.Integer() }),
    }),
  },
  events: {
    charged: event({ parameters: { orderId: Type.String(), chargeId: Type.String(), amountCents: Type.Integer() } }),
  },
});
