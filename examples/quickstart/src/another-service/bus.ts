// File: another-service/bus.ts — a service that uses the auth API without owning it.
import { createBus, type EventParams } from '@lightbus/core';
import { authApi } from '../auth-api.js';

export const bus = createBus({ apis: [authApi], serviceName: 'another_service' });

/** Where the handler prints (the quick start's test swaps it to capture the lines). */
export const output = { log: (line: string) => console.log(line) };

/** Prints each new user; the quick start's stand-in for a welcome e-mail. */
export function handleNewUser({ username, email }: EventParams<typeof authApi, 'userRegistered'>): void {
  output.log('A new user was created in the authentication service:');
  output.log(`    Username: ${username}`);
  output.log(`    Email: ${email}`);
}

// Listeners run in the worker (`lightbus run`): set them up when it starts.
bus.onStart((b) => {
  b.auth.userRegistered.listen(handleNewUser, { listenerName: 'print_on_new_registration' });
});
