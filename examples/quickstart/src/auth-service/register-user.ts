// File: auth-service/register-user.ts — fires user_registered (only the owner of `auth` may).
import { bus } from './bus.js';

const [username = 'admin', email = 'admin@example.com'] = process.argv.slice(2);
await bus.auth.userRegistered.fire({ username, email });
console.log(`Fired auth.user_registered for ${username}`);
await bus.close();
