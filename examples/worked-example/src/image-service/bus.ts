// File: src/image-service/bus.ts — the image service has a worker only: it serves image.resize.
import { createBus } from '@lightbus/core';
import { imageApi } from './api.js';

export const bus = createBus({ apis: [imageApi], serviceName: 'image_service' });

bus.registerApi(imageApi, {
  // A real service would fetch, resize and store the image. We return where it would be.
  resize: ({ url, width, height }) => `${url}?w=${width}&h=${height}`,
});
