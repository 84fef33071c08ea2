import { describe, expect, it } from 'vitest';
import { runQuickstart } from '../src/quickstart.js';

describe('the quick start', () => {
  it('answers check_password with true, and user_registered is fired and heard', async () => {
    const lines: string[] = [];
    const result = await runQuickstart((line) => lines.push(line));
    expect(result).toEqual({ valid: true, heard: ['admin'] });
    expect(lines).toContain('Password valid!');
    expect(lines).toContain('    Username: admin');
  });
});
