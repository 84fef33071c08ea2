import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';

// The same quick start, over the real Redis, chosen by config alone (LIGHTBUS_CONFIG).
// It uses its own database (11) so its fixed API name `auth` meets no other test's keys.
const url = 'redis://127.0.0.1:6379/11';
const dir = mkdtempSync(join(tmpdir(), 'quickstart-redis-'));
const config = join(dir, 'lightbus.yaml');
writeFileSync(
  config,
  [
    'bus:',
    `  schema: { transport: { redis: { url: "${url}" } } }`,
    'apis:',
    '  default:',
    `    rpc_transport: { redis: { url: "${url}" } }`,
    `    result_transport: { redis: { url: "${url}" } }`,
    `    event_transport: { redis: { url: "${url}" } }`,
  ].join('\n'),
);

afterAll(async () => {
  const redis = new Redis(url);
  const keys = [...(await redis.keys('auth*')), ...(await redis.keys('schema*')), ...(await redis.keys('rpc_expiry_key:*'))];
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

describe('the quick start over Redis', () => {
  it('answers check_password with true, and user_registered is fired and heard', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, LIGHTBUS_CONFIG: config, LIGHTBUS_LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    expect(stdout).toContain('Transports: redis');
    expect(stdout).toContain('Password valid!');
    expect(stdout).toContain('    Username: admin');
  });
});
