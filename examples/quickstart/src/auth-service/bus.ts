// File: auth-service/bus.ts — the auth service's bus. `lightbus run` in this folder serves it.
import { createBus } from '@lightbus/core';
import { authApi } from '../auth-api.js';

// Create your service's bus client. Import it elsewhere in the service to use the bus.
export const bus = createBus({ apis: [authApi], serviceName: 'auth_service' });

// Register the API: this process is now its authoritative owner. It answers calls to its RPCs
// (when the worker runs) and may fire its events.
bus.registerApi(authApi, {
  checkPassword: ({ username, password }) => username === 'admin' && password === 'secret',
});
