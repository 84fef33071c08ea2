// File: src/price-monitor/api.ts — the contract of the price monitoring service.
import { defineApi, event, Type, Types } from '@lightbus/core';

export const priceMonitorApi = defineApi({
  name: 'price_monitor',
  events: {
    competitorPriceChanged: event({
      parameters: {
        sku: Type.String(),
        price: Type.Integer({ description: 'In cents' }),
        currency: Types.Default(Type.String(), 'EUR'),
        checkedAt: Types.DateTime(),
      },
    }),
  },
});
