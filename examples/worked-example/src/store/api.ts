// File: src/store/api.ts — the contract of the online store.
import { defineApi, event, Type } from '@lightbus/core';

export const storeApi = defineApi({
  name: 'store',
  events: {
    pageViewed: event({ parameters: { url: Type.String(), sku: Type.String() } }),
  },
});
