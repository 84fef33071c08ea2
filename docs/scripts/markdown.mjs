// Small, dependency-free helpers to read the documentation's markdown: the pages, their fenced
// code blocks (with the info string parsed), their headings (as anchor slugs) and their links.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The docs folder (this script's parent). */
export const docsDir = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

const SKIP_DIRS = new Set(['node_modules', '.snippets', 'scripts', 'test', 'api']);

/** Every markdown page under `dir`, as absolute paths, sorted. */
export function markdownFiles(dir = docsDir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) {
        if (!SKIP_DIRS.has(name) && !name.startsWith('.')) walk(path);
      } else if (name.endsWith('.md')) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/**
 * Parses a fence's info string: ```ts title="src/bus.ts" example="quickstart" nocheck
 * (`title`: the file the snippet is; `example`: the examples/ folder holding that same file;
 * `output`: the example whose printed output the block shows).
 * @returns {{ lang: string, title?: string, example?: string, output?: string, flags: Set<string> }}
 */
export function parseInfo(info) {
  const lang = (info.trim().split(/\s+/)[0] ?? '').toLowerCase();
  const attrs = {};
  const rest = info
    .replace(/(\w+)="([^"]*)"/g, (_m, key, value) => {
      attrs[key] = value;
      return '';
    })
    .trim()
    .split(/\s+/)
    .slice(1)
    .filter((s) => s !== '');
  return { lang, title: attrs.title, example: attrs.example, output: attrs.output, flags: new Set(rest) };
}

/**
 * The fenced code blocks of a markdown text.
 * @returns {Array<{ lang: string, title?: string, flags: Set<string>, code: string, line: number }>}
 */
export function codeBlocks(text) {
  const lines = text.split('\n');
  const blocks = [];
  let open;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(line);
    if (!open) {
      if (fence) open = { marker: fence[2], indent: fence[1].length, info: fence[3], start: i + 1, body: [] };
      continue;
    }
    if (fence && fence[2].startsWith(open.marker[0]) && fence[2].length >= open.marker.length && fence[3].trim() === '') {
      blocks.push({ ...parseInfo(open.info), code: open.body.join('\n') + '\n', line: open.start });
      open = undefined;
      continue;
    }
    open.body.push(open.indent > 0 ? line.replace(new RegExp(`^ {0,${open.indent}}`), '') : line);
  }
  if (open) throw new Error(`An unclosed code fence starts at line ${open.start}.`);
  return blocks;
}

/** The text with fenced code blocks and inline code removed (so their contents are not read as links). */
export function proseOnly(text, keepInlineCode = false) {
  const lines = text.split('\n');
  let inFence = false;
  return lines
    .map((line) => {
      if (/^ {0,3}(`{3,}|~{3,})/.test(line)) {
        inFence = !inFence;
        return '';
      }
      if (inFence) return '';
      return keepInlineCode ? line : line.replace(/`[^`]*`/g, '``');
    })
    .join('\n');
}

/** GitHub-style anchor slug of a heading (the one typedoc and GitHub both produce for plain text). */
export function slug(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/<[^>]+>/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/**
 * The anchors a page defines: one per heading (duplicates get -1, -2 ...). Headings holding
 * inline code are left out: GitHub keeps the code's text in the anchor and typedoc drops it,
 * so no link to them can work in both places.
 */
export function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const line of proseOnly(text, true).split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    if (!m[1].includes('`')) out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/**
 * The links of a page (inline `[text](target)` and reference definitions `[x]: target`),
 * with line numbers. Code is ignored.
 */
export function links(text) {
  const out = [];
  const lines = proseOnly(text).split('\n');
  lines.forEach((line, i) => {
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1], line: i + 1 });
    const def = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(line);
    if (def) out.push({ target: def[1], line: i + 1 });
  });
  return out;
}

/** Reads a page. */
export function read(path) {
  return readFileSync(path, 'utf8');
}

/** A page's path relative to the docs folder, for messages. */
export function rel(path) {
  return relative(docsDir, path);
}
