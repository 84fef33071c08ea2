// Fails on broken links.
//
//   node scripts/check-links.mjs               the markdown pages: every relative link must name
//                                              an existing file, and every #anchor a heading of
//                                              the target page
//   node scripts/check-links.mjs --html DIR    the built site: every local href and src in every
//                                              .html file must resolve, anchors included
//
// External links (http:, https:, mailto:) are not fetched: the check must work offline.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { anchors, docsDir, links, markdownFiles, read, rel } from './markdown.mjs';

const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i;

/** Broken links of the markdown pages, as messages. */
export function checkMarkdownLinks() {
  const problems = [];
  const anchorCache = new Map();
  const anchorsOf = (path) => {
    if (!anchorCache.has(path)) anchorCache.set(path, anchors(read(path)));
    return anchorCache.get(path);
  };
  let count = 0;
  for (const page of markdownFiles()) {
    for (const { target, line } of links(read(page))) {
      if (EXTERNAL.test(target)) continue;
      count++;
      const [pathPart, anchor] = target.split('#', 2);
      const where = `${rel(page)}:${line}`;
      const file = pathPart === '' ? page : resolve(dirname(page), decodeURIComponent(pathPart));
      if (!existsSync(file)) {
        problems.push(`${where}: ${target} does not exist (${relative(docsDir, file)})`);
        continue;
      }
      if (anchor !== undefined && anchor !== '') {
        if (!file.endsWith('.md')) continue;
        if (!anchorsOf(file).has(anchor)) {
          problems.push(`${where}: ${target}: no heading with the anchor #${anchor} in ${relative(docsDir, file)}`);
        }
      }
    }
  }
  return { count, problems };
}

function htmlFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.html')) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/** Broken local links of a built site, as messages. */
export function checkHtmlLinks(siteDir) {
  const problems = [];
  const idCache = new Map();
  const idsOf = (path) => {
    if (!idCache.has(path)) {
      const html = readFileSync(path, 'utf8');
      idCache.set(path, new Set([...html.matchAll(/\s(?:id|name)="([^"]+)"/g)].map((m) => m[1])));
    }
    return idCache.get(path);
  };
  let count = 0;
  for (const page of htmlFiles(siteDir)) {
    const html = readFileSync(page, 'utf8');
    for (const m of html.matchAll(/\s(?:href|src)="([^"]*)"/g)) {
      const target = m[1].replace(/&amp;/g, '&');
      if (target === '' || EXTERNAL.test(target)) continue;
      count++;
      const [pathPart, anchor] = target.split('#', 2);
      const file = pathPart === '' ? page : resolve(dirname(page), decodeURIComponent(pathPart.split('?')[0]));
      const where = relative(siteDir, page);
      if (!existsSync(file)) {
        problems.push(`${where}: ${target} does not exist`);
        continue;
      }
      if (anchor && file.endsWith('.html') && !idsOf(file).has(decodeURIComponent(anchor))) {
        problems.push(`${where}: ${target}: no element with id "${anchor}" in ${relative(siteDir, file)}`);
      }
    }
  }
  return { count, problems };
}

function main() {
  const i = process.argv.indexOf('--html');
  const { count, problems } = i >= 0 ? checkHtmlLinks(resolve(process.argv[i + 1] ?? join(docsDir, '..', 'docs-out'))) : checkMarkdownLinks();
  if (problems.length > 0) {
    console.error(`${problems.length} broken link(s) of ${count} checked:\n${problems.join('\n')}`);
    process.exitCode = 1;
  } else console.log(`Links: ${count} local links checked, none broken.`);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) main();
