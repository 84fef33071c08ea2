// Runs the conformance suite against the transport written in howto/write-a-transport.md, using
// the page's own code blocks (src/file-schema-transport.ts and test/conformance.test.ts), so the
// guide is proven to work as printed.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
// @ts-expect-error -- plain ESM script without declarations
import { codeBlocks } from '../scripts/markdown.mjs';

const docs = new URL('..', import.meta.url).pathname;
const page = readFileSync(join(docs, 'howto', 'write-a-transport.md'), 'utf8');
const out = join(docs, '.transport-check');
rmSync(out, { recursive: true, force: true });
for (const title of ['src/file-schema-transport.ts', 'test/conformance.test.ts']) {
  const block = (codeBlocks(page) as Array<{ title?: string; code: string }>).find((b) => b.title === title);
  if (!block) throw new Error(`howto/write-a-transport.md has no code block titled ${title}`);
  const path = join(out, title.replace(/\.test\.ts$/, '.suite.ts'));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, block.code);
}
// Importing the page's test module registers its describe blocks in this file.
await import(join(out, 'test', 'conformance.suite.ts'));

// The runnable example (examples/custom-transport) holds the same files: they must not drift.
const { describe: describeDrift, expect: expectDrift, it: itDrift } = await import('vitest');
describeDrift('examples/custom-transport', () => {
  itDrift('holds exactly the code printed in the how-to', () => {
    const example = join(docs, '..', 'examples', 'custom-transport');
    for (const title of ['src/file-schema-transport.ts', 'src/bus.ts', 'test/conformance.test.ts']) {
      const block = (codeBlocks(page) as Array<{ title?: string; code: string }>).find((b) => b.title === title);
      expectDrift(readFileSync(join(example, title), 'utf8'), `${title} differs from the how-to`).toBe(block?.code);
    }
  });
});
