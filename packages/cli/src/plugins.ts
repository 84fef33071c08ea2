/**
 * The transport plugins installed next to the project (or the CLI): `@lightbus/redis`,
 * `@lightbus/nats`, `@lightbus/amqp`. A package that is not installed is skipped silently.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { memoryTransports, type TransportPlugin } from '@lightbus/core';

/** The transport packages the CLI looks for. */
export const KNOWN_TRANSPORT_PACKAGES = ['@lightbus/redis', '@lightbus/nats', '@lightbus/amqp'] as const;

/** The file an `exports` entry points to for `import`. */
function exportTarget(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  return exportTarget(v['import']) ?? exportTarget(v['node']) ?? exportTarget(v['default']);
}

/** Finds `node_modules/<name>` from `dir` upwards and returns its ESM entry file. */
function resolveFrom(name: string, dir: string): string | undefined {
  let current = resolve(dir);
  for (;;) {
    const pkgDir = join(current, 'node_modules', ...name.split('/'));
    const pkgFile = join(pkgDir, 'package.json');
    if (existsSync(pkgFile)) {
      try {
        const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports?: unknown; module?: string; main?: string };
        const entry = exportTarget((pkg.exports as Record<string, unknown> | undefined)?.['.'] ?? pkg.exports);
        const file = entry ?? pkg.module ?? pkg.main ?? 'index.js';
        return join(pkgDir, file);
      } catch {
        return undefined;
      }
    }
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

async function importPackage(specifier: string, cwd: string): Promise<Record<string, unknown> | undefined> {
  // Resolve from the project first (where the user installed it), then from the CLI itself.
  const resolved = resolveFrom(specifier, cwd) ?? resolveFrom(specifier, import.meta.dirname);
  try {
    if (resolved) return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
    return (await import(specifier)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The memory plugin plus every installed transport plugin that exports `transportPlugin`. */
export async function installedTransportPlugins(cwd = process.cwd()): Promise<TransportPlugin<object>[]> {
  const plugins: TransportPlugin<object>[] = [memoryTransports];
  for (const name of KNOWN_TRANSPORT_PACKAGES) {
    const mod = await importPackage(name, cwd);
    const plugin = mod?.['transportPlugin'] as TransportPlugin<object> | undefined;
    if (plugin && typeof plugin === 'object' && typeof plugin.name === 'string') plugins.push(plugin);
  }
  return plugins;
}
