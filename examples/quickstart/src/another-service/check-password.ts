// File: another-service/check-password.ts — calls the auth service's RPC.
import { bus } from './bus.js';

const valid = await bus.auth.checkPassword({ username: 'admin', password: 'secret' });
console.log(valid ? 'Password valid!' : 'Oops, bad username or password');
await bus.close();
