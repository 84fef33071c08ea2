// The documentation's own tests: every TypeScript snippet type-checks against the real
// @lightbus/core, every YAML config block passes core's config validation, the generated
// configuration reference matches the code, and no relative link or anchor is broken.
import { readFileSync } from 'node:fs';
import * as core from '@lightbus/core';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM scripts without declarations
import { checkYamlBlocks, extractSnippets, typecheckSnippets } from '../scripts/check-snippets.mjs';
// @ts-expect-error -- plain ESM scripts without declarations
import { pagePath, render } from '../scripts/gen-config-reference.mjs';
// @ts-expect-error -- plain ESM scripts without declarations
import { checkMarkdownLinks } from '../scripts/check-links.mjs';
// @ts-expect-error -- plain ESM scripts without declarations
import { codeBlocks, markdownFiles, read, rel } from '../scripts/markdown.mjs';

type Block = { lang: string; title?: string; example?: string; flags: Set<string>; code: string; line: number };

describe('the documentation', () => {
  it('type-checks every ```ts snippet with tsc', () => {
    const { files } = extractSnippets() as { files: Array<{ page: string; line: number; path: string }> };
    expect(files.length).toBeGreaterThan(20);
    expect(typecheckSnippets(files)).toBe('');
  });

  it('marks few snippets nocheck', () => {
    const blocks = (markdownFiles() as string[]).flatMap((page) => codeBlocks(read(page)) as Block[]).filter((b) => b.lang === 'ts');
    const unchecked = blocks.filter((b) => b.flags.has('nocheck'));
    expect(unchecked.length).toBeLessThanOrEqual(Math.ceil(blocks.length / 10));
  });

  it('shows the examples/ files exactly as they are (the last version of each titled snippet)', () => {
    const shown = new Map<string, { page: string; block: Block }>();
    for (const page of markdownFiles() as string[]) {
      for (const block of codeBlocks(read(page)) as Block[]) {
        if (block.example && block.title) shown.set(`${block.example}/${block.title}`, { page: rel(page) as string, block });
      }
    }
    expect(shown.size).toBeGreaterThan(8);
    for (const [file, { page, block }] of shown) {
      const actual = readFileSync(new URL(`../../examples/${file}`, import.meta.url), 'utf8');
      expect(block.code, `${page}:${block.line} shows examples/${file}`).toBe(actual);
    }
  });

  it('names the file in the first line of every titled snippet (GitHub and typedoc do not show titles)', () => {
    const unnamed: string[] = [];
    for (const page of markdownFiles() as string[]) {
      for (const block of codeBlocks(read(page)) as Block[]) {
        if (!block.title || block.example) continue;
        if (!block.code.split('\n')[0]!.includes(block.title.replace(/^src\//, ''))) unnamed.push(`${rel(page) as string}:${block.line} ${block.title}`);
      }
    }
    expect(unnamed).toEqual([]);
  });

  it('validates every ```yaml block as a Lightbus configuration', async () => {
    const { checked, problems } = (await checkYamlBlocks()) as { checked: number; problems: string[] };
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(3);
  });

  it('has a configuration reference generated from the current configJsonSchema()', () => {
    expect(readFileSync(pagePath as string, 'utf8'), 'run `pnpm --filter @lightbus/docs config-reference`').toBe(render(core));
  });

  it('documents every error code of @lightbus/core', () => {
    const page = readFileSync(new URL('../reference/errors.md', import.meta.url), 'utf8');
    const missing = Object.values(core.ErrorCodes).filter((code) => !page.includes(`## ${code}`));
    expect(missing).toEqual([]);
  });

  it('has no broken relative link or anchor in the markdown', () => {
    const { count, problems } = checkMarkdownLinks() as { count: number; problems: string[] };
    expect(problems).toEqual([]);
    expect(count).toBeGreaterThan(20);
  });

  it('gives every page a title and a place in the site (typedoc.json projectDocuments)', () => {
    const pages = (markdownFiles() as string[]).map((p) => rel(p) as string);
    const untitled = pages.filter((page) => !/^# \S/m.test(read(`${new URL('..', import.meta.url).pathname}${page}`) as string));
    expect(untitled).toEqual([]);
    const typedoc = JSON.parse(readFileSync(new URL('../../typedoc.json', import.meta.url), 'utf8')) as { projectDocuments: string[]; readme: string };
    const inSite = new Set([typedoc.readme, ...typedoc.projectDocuments].map((p) => p.replace(/^docs\//, '')));
    expect(pages.filter((page) => !inSite.has(page))).toEqual([]);
  });
});
