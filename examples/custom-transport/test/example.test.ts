import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

describe('the custom transport example', () => {
  it('shares a schema through files and validates calls against it', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, LIGHTBUS_LOG_LEVEL: 'warn' },
      timeout: 30_000,
    });
    expect(stdout).toContain('another_service loaded the schemas of: auth');
    expect(stdout).toContain('check_password(admin, secret) -> true');
    expect(stdout).toContain('check_password(admin) -> LB_VALIDATION_FAILED');
  });
});
