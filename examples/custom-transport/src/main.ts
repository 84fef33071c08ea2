// pnpm start: two processes' worth of buses share API schemas through the file transport. The
// auth service publishes its schema into a folder; another service, with no definition of the
// API, loads it from there and its calls are validated against it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBus, defineApi, rpc, Type, LightbusError } from '@lightbus/core';
import { transportPlugin as filePlugin } from './file-schema-transport.js';

const dir = await mkdtemp(join(tmpdir(), 'lightbus-schemas-'));
const config = { bus: { schema: { transport: { file: { dir } } } } };
const authApi = defineApi({
  name: 'auth',
  rpcs: { checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }) },
});

const auth = createBus({ serviceName: 'auth_service', transports: [filePlugin], config });
auth.registerApi(authApi, { checkPassword: ({ username, password }) => username === 'admin' && password === 'secret' });
await auth.start(); // publishes the schema: a file in the folder
console.log(`auth_service published its schema to ${dir}`);

const other = createBus({ serviceName: 'another_service', transports: [filePlugin], config });
const schemas = await other.loadSchemas();
console.log(`another_service loaded the schemas of: ${Object.keys(schemas).join(', ')}`);
console.log(`check_password(admin, secret) -> ${String(await other.api('auth').call('check_password', { username: 'admin', password: 'secret' }))}`);
try {
  await other.api('auth').call('check_password', { username: 'admin' });
} catch (error) {
  if (!LightbusError.isInstance(error)) throw error;
  console.log(`check_password(admin) -> ${error.code}: validated against the loaded schema`);
}
await other.close();
await auth.close();
await rm(dir, { recursive: true, force: true });
