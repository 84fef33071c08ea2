/**
 * Writing a command's result: to stdout, to one file, or to one file per entry in a folder.
 *
 * @module
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';

/** True when `out` names a folder: it exists as one, or ends with a path separator. */
export function isDirectoryTarget(out: string): boolean {
  if (out.endsWith('/') || out.endsWith(sep)) return true;
  try {
    return existsSync(out) && statSync(out).isDirectory();
  } catch {
    return false;
  }
}

/** Writes `text` to `file`, creating its folder. Returns the absolute path. */
export function writeTextFile(file: string, text: string): string {
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
  return path;
}

/** Writes each `name → text` into `dir`, creating it. Returns the absolute paths. */
export function writeFilesInto(dir: string, files: ReadonlyMap<string, string>): string[] {
  const base = resolve(dir);
  mkdirSync(base, { recursive: true });
  return [...files].map(([name, text]) => writeTextFile(join(base, name), text));
}

/** Writes to stdout and resolves once it is flushed. */
export function writeStdout(text: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`, (error) => (error ? reject(error) : resolvePromise()));
  });
}

/** Sorts an object's keys (stable JSON output). */
export function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
