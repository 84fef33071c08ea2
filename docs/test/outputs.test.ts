// The output the tutorials show is the output the examples print: each ```text block marked
// output="<example>" is compared with a real run of that example on the in-memory transports.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runQuickstart } from '../../examples/quickstart/src/quickstart.js';
import { runWorkedExample } from '../../examples/worked-example/src/worked-example.js';
// @ts-expect-error -- plain ESM script without declarations
import { codeBlocks } from '../scripts/markdown.mjs';

function shownOutput(page: string, example: string): string[] {
  const text = readFileSync(new URL(`../tutorials/${page}`, import.meta.url), 'utf8');
  const block = (codeBlocks(text) as Array<{ output?: string; code: string }>).find((b) => b.output === example);
  if (!block) throw new Error(`tutorials/${page} has no \`\`\`text output="${example}" block`);
  // Lightbus's own log lines go to stderr; the examples report what the program prints.
  return block.code.trimEnd().split('\n').filter((line) => !line.startsWith('[lightbus]'));
}

describe('the output shown in the tutorials', () => {
  it('quick-start.md shows what `pnpm quickstart` prints', async () => {
    const printed: string[] = [];
    await runQuickstart((line) => printed.push(line));
    expect(shownOutput('quick-start.md', 'quickstart')).toEqual(printed);
  });

  it('worked-example.md shows what the worked example prints', async () => {
    const printed: string[] = [];
    await runWorkedExample((line) => printed.push(line));
    expect(shownOutput('worked-example.md', 'worked-example')).toEqual(printed);
  });
});
