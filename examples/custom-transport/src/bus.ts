// File: src/bus.ts
import { createBus } from '@lightbus/core';
import { transportPlugin as filePlugin } from './file-schema-transport.js';

export const bus = createBus({
  serviceName: 'auth_service',
  transports: [filePlugin],
  config: { bus: { schema: { transport: { file: { dir: '/var/lib/lightbus/schemas' } } } } },
});
