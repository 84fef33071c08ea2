/**
 * Turns transport selections from the config (`{ redis: { url } }`) into transport instances.
 * Plugins come from the bus options; a plugin not given is imported from `@lightbus/{name}`
 * (which must export `transportPlugin`). One instance per role and distinct options, shared by
 * every API that selects it.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigurationError, ErrorCodes } from '../errors.js';
import type { TransportSelection } from '../config.js';
import { memoryTransports } from './memory.js';
import {
  TRANSPORT_SPECIFICATION_VERSION,
  type TransportByRole,
  type TransportContext,
  type TransportPlugin,
  type TransportRole,
} from './types.js';

/**
 * Resolves a transport package the way the application would: from the current folder, then
 * from the main script's folder, then from core itself. (With pnpm's strict layout, core cannot
 * see the application's dependencies.)
 */
function resolveFromApp(moduleName: string): string {
  const bases = [join(process.cwd(), 'noop.js'), process.argv[1] ? resolvePath(process.argv[1]) : undefined, import.meta.url];
  for (const base of bases) {
    if (!base) continue;
    try {
      return pathToFileURL(createRequire(base).resolve(moduleName)).href;
    } catch {
      // try the next base
    }
  }
  return moduleName;
}

const FACTORY: Record<TransportRole, keyof TransportPlugin> = {
  rpc: 'createRpcTransport',
  result: 'createResultTransport',
  event: 'createEventTransport',
  schema: 'createSchemaTransport',
};

type AnyPlugin = TransportPlugin<object>;

/** Builds and caches transports for one bus. */
export class TransportRegistry {
  readonly #plugins = new Map<string, AnyPlugin>();
  readonly #instances = new Map<string, Promise<TransportByRole[TransportRole]>>();
  readonly #opened: Array<TransportByRole[TransportRole]> = [];
  readonly #context: TransportContext;
  readonly #identities = new WeakMap<object, number>();
  #nextIdentity = 1;

  /**
   * @param plugins plugins given to the bus (memory is always there)
   * @param context passed to every transport
   */
  constructor(plugins: readonly AnyPlugin[], context: TransportContext) {
    this.#context = context;
    this.#plugins.set('memory', memoryTransports);
    for (const plugin of plugins) this.addPlugin(plugin);
  }

  /** Adds a plugin, checking its specification version. */
  addPlugin(plugin: AnyPlugin): void {
    const version: unknown = plugin.specificationVersion;
    if (version !== TRANSPORT_SPECIFICATION_VERSION) {
      throw new ConfigurationError(
        `Transport plugin "${plugin.name}" implements interface version ${String(version)}, but this @lightbus/core needs ${TRANSPORT_SPECIFICATION_VERSION}. Install matching versions.`,
        { code: ErrorCodes.TRANSPORT_UNKNOWN },
      );
    }
    this.#plugins.set(plugin.name, plugin);
  }

  /** The plugins known so far. */
  get plugins(): AnyPlugin[] {
    return [...this.#plugins.values()];
  }

  /** Every transport built so far. */
  get instances(): ReadonlyArray<TransportByRole[TransportRole]> {
    return this.#opened;
  }

  /** The transport for `role` described by `selection`, built on first use. */
  get<R extends TransportRole>(role: R, selection: TransportSelection): Promise<TransportByRole[R]> {
    const entries = Object.entries(selection);
    if (entries.length !== 1) {
      return Promise.reject(
        new ConfigurationError(`A ${role}_transport must name exactly one transport, e.g. { redis: { url: "redis://127.0.0.1:6379" } }.`),
      );
    }
    const [name, options] = entries[0]!;
    const key = `${role}|${name}|${this.#stableKey(options)}`;
    let instance = this.#instances.get(key);
    if (!instance) {
      instance = this.#build(role, name, options ?? {});
      this.#instances.set(key, instance);
      instance.catch(() => this.#instances.delete(key));
    }
    return instance as Promise<TransportByRole[R]>;
  }

  async #build(role: TransportRole, name: string, options: object): Promise<TransportByRole[TransportRole]> {
    const plugin = await this.#plugin(name);
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the plugin as `this` below
    const factory = plugin[FACTORY[role]] as ((this: AnyPlugin, o: object, c: TransportContext) => TransportByRole[TransportRole]) | undefined;
    if (typeof factory !== 'function') {
      throw new ConfigurationError(
        `The "${name}" transport cannot serve the ${role} role. Choose another transport for ${role}_transport.`,
        { code: ErrorCodes.TRANSPORT_UNKNOWN },
      );
    }
    const transport = factory.call(plugin, options, this.#context);
    if (transport.open) {
      try {
        await transport.open();
      } catch (error) {
        // Release whatever the failed open left behind (sockets, timers), then report.
        await transport.close().catch(() => undefined);
        throw error;
      }
    }
    this.#opened.push(transport);
    return transport;
  }

  async #plugin(name: string): Promise<AnyPlugin> {
    const known = this.#plugins.get(name);
    if (known) return known;
    const moduleName = `@lightbus/${name}`;
    let mod: { transportPlugin?: AnyPlugin };
    try {
      mod = (await import(resolveFromApp(moduleName))) as { transportPlugin?: AnyPlugin };
    } catch (error) {
      throw new ConfigurationError(
        `The config names the "${name}" transport, but ${moduleName} could not be loaded (${(error as Error).message}). Install it (pnpm add ${moduleName}) or pass its plugin to createBus({ transports: [...] }).`,
        { code: ErrorCodes.TRANSPORT_UNKNOWN, cause: error },
      );
    }
    if (!mod.transportPlugin) {
      throw new ConfigurationError(`${moduleName} does not export a transportPlugin. Pass the plugin to createBus({ transports: [...] }).`, {
        code: ErrorCodes.TRANSPORT_UNKNOWN,
      });
    }
    this.addPlugin(mod.transportPlugin);
    return mod.transportPlugin;
  }

  /** Closes every transport built, once. Errors are collected, not thrown one by one. */
  async closeAll(): Promise<unknown[]> {
    const all = [...this.#opened];
    this.#opened.length = 0;
    this.#instances.clear();
    const results = await Promise.allSettled(all.map((t) => t.close()));
    return results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
  }

  #stableKey(value: unknown): string {
    return JSON.stringify(value ?? {}, (_key, v: unknown) => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        const proto = Object.getPrototypeOf(v) as unknown;
        if (proto !== Object.prototype && proto !== null) {
          let id = this.#identities.get(v);
          if (id === undefined) {
            id = this.#nextIdentity++;
            this.#identities.set(v, id);
          }
          return `#object${id}`;
        }
        return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)));
      }
      return v;
    });
  }
}
