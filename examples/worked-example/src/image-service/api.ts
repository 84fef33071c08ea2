// File: src/image-service/api.ts — the contract of the image service.
import { defineApi, rpc, Type } from '@lightbus/core';

export const imageApi = defineApi({
  name: 'image',
  rpcs: {
    resize: rpc({
      parameters: {
        url: Type.String({ format: 'uri' }),
        width: Type.Integer({ minimum: 1, maximum: 4000 }),
        height: Type.Integer({ minimum: 1, maximum: 4000 }),
      },
      response: Type.String(),
    }),
  },
});
