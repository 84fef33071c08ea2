// Checks the code in the documentation:
//   - every ```ts block is written to docs/.snippets/<page>/ and type-checked with tsc (strict,
//     NodeNext, the repository's settings) against the real @lightbus/core;
//   - every ```yaml block is parsed and checked as a Lightbus configuration with core's
//     validateConfig (the same check createBus makes).
//
// Conventions in the pages:
//   ```ts title="src/auth-service/bus.ts"   written at that path in the page's folder, so other
//                                           snippets of the same page can import it
//                                           ('./auth-service/bus.js'). A title used again later
//                                           on the page (a file the tutorial edits) keeps the
//                                           last version at the path; earlier ones are checked
//                                           beside it as <name>.v1.ts, <name>.v2.ts ...
//   ```ts                                   a self-contained snippet (snippet-L<line>.ts)
//   ```ts nocheck / ```yaml nocheck         not checked (keep this rare: deliberately partial code)
//
// Usage: node scripts/check-snippets.mjs   (exit code 1 on any problem)
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { codeBlocks, docsDir, markdownFiles, read, rel } from './markdown.mjs';

export const snippetsDir = join(docsDir, '.snippets');
const TS_LANGS = new Set(['ts', 'typescript']);
const YAML_LANGS = new Set(['yaml', 'yml']);

/**
 * Extracts the TypeScript snippets into docs/.snippets and returns what was written.
 * @returns {{ files: Array<{ page: string, line: number, path: string }>, skipped: number }}
 */
export function extractSnippets() {
  rmSync(snippetsDir, { recursive: true, force: true });
  const files = [];
  let skipped = 0;
  for (const page of markdownFiles()) {
    const pageDir = join(snippetsDir, rel(page).replace(/\.md$/, ''));
    const blocks = codeBlocks(read(page)).filter((b) => TS_LANGS.has(b.lang));
    const byTitle = new Map();
    for (const block of blocks) {
      if (block.flags.has('nocheck')) {
        skipped++;
        continue;
      }
      if (block.title) {
        if (!/^[\w./-]+\.ts$/.test(block.title) || block.title.includes('..')) {
          throw new Error(`${rel(page)}:${block.line}: title="${block.title}" must be a relative .ts path`);
        }
        const list = byTitle.get(block.title) ?? [];
        list.push(block);
        byTitle.set(block.title, list);
      } else {
        const path = join(pageDir, `snippet-L${block.line}.ts`);
        files.push({ page: rel(page), line: block.line, path, code: block.code });
      }
    }
    for (const [title, versions] of byTitle) {
      versions.forEach((block, i) => {
        const last = i === versions.length - 1;
        const path = join(pageDir, last ? title : title.replace(/\.ts$/, `.v${i + 1}.ts`));
        files.push({ page: rel(page), line: block.line, path, code: block.code });
      });
    }
  }
  for (const file of files) {
    mkdirSync(dirname(file.path), { recursive: true });
    // A leading comment maps tsc's messages back to the page.
    const code = file.code.includes('export ') || file.code.includes('import ') ? file.code : `${file.code}\nexport {};\n`;
    writeFileSync(file.path, `// ${file.page}:${file.line}\n${code}`);
  }
  return { files: files.map(({ page, line, path }) => ({ page, line, path })), skipped };
}

/**
 * Runs tsc over the extracted snippets. Returns tsc's messages ('' when clean), each pointed
 * back at the page and line the code came from.
 * @param {Array<{ page: string, line: number, path: string }>} files what extractSnippets wrote
 */
export function typecheckSnippets(files = []) {
  const byPath = new Map(files.map((f) => [relative(docsDir, f.path), f]));
  const mapBack = (text) =>
    text.replace(/^(\S+?\.ts)\((\d+),(\d+)\)/gm, (whole, path, line, column) => {
      const file = byPath.get(path);
      return file ? `${file.page}:${file.line + Number(line) - 1}:${column} (${path})` : whole;
    });
  const require = createRequire(join(docsDir, 'package.json'));
  const tsc = require.resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(docsDir, 'tsconfig.snippets.json'), '--pretty', 'false'], {
      cwd: docsDir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return '';
  } catch (error) {
    return mapBack(`${error.stdout ?? ''}${error.stderr ?? ''}`.trim()) || String(error);
  }
}

/**
 * Checks every ```yaml block as a Lightbus configuration.
 * @returns {Promise<{ checked: number, problems: string[] }>}
 */
export async function checkYamlBlocks() {
  const { validateConfig } = await import('@lightbus/core');
  const problems = [];
  let checked = 0;
  for (const page of markdownFiles()) {
    for (const block of codeBlocks(read(page))) {
      if (!YAML_LANGS.has(block.lang) || block.flags.has('nocheck')) continue;
      checked++;
      const where = `${rel(page)}:${block.line}`;
      let value;
      try {
        value = parseYaml(block.code);
      } catch (error) {
        problems.push(`${where}: not valid YAML: ${error.message}`);
        continue;
      }
      try {
        validateConfig(value ?? {}, [], `configuration at ${where}`);
      } catch (error) {
        problems.push(error.message);
      }
    }
  }
  return { checked, problems };
}

async function main() {
  const { files, skipped } = extractSnippets();
  const output = typecheckSnippets(files);
  const yaml = await checkYamlBlocks();
  console.log(`TypeScript snippets: ${files.length} type-checked, ${skipped} marked nocheck. YAML configs: ${yaml.checked} validated.`);
  let failed = false;
  if (output) {
    failed = true;
    console.error(`tsc found problems in the snippets (files under docs/.snippets; the first line of each names its page and line):\n${output}`);
  }
  if (yaml.problems.length > 0) {
    failed = true;
    console.error(yaml.problems.join('\n'));
  }
  if (failed) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
