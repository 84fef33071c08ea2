/**
 * `lightbus inspect`: the events on the bus, newest first, read from the event transport's
 * history, with filters; `--follow` keeps printing new ones.
 *
 * `--follow` polls the history for entries it has not printed yet instead of consuming: a
 * consume would create a listener group on the broker (`{service}-{listener}`) that the
 * transport interface gives no way to delete, leaving a group behind that keeps collecting
 * pending entries. Polling is read-only and leaves nothing on the broker.
 *
 * @module
 */
import type { EventMessage, EventTransport, HistoricalEvent, HistoryQuery } from '@lightbus/core';
import { CliError } from '../errors.js';
import { obtainBus, type AnyBus, type BusFlags } from '../load-bus.js';
import { closeReadOnlyBus } from './schemas.js';

/** Flags of `lightbus inspect`. */
export interface InspectFlags extends BusFlags {
  /** API name(s), comma separated. Required unless the bus module registers exactly one API. */
  api?: string;
  /** Event name, `*` and `?` wildcards allowed (`user_*`). */
  event?: string;
  /** Only the event with this message id. */
  id?: string;
  /** `key=value` filters on the parameters (dotted keys reach into objects). */
  field?: string[];
  /** At most this many events. Default 20. */
  limit?: number;
  /** Keep printing new events. */
  follow?: boolean;
  /** Poll interval of `--follow`, in milliseconds. Default 1000. */
  interval?: number;
  /** Only events at or after this time: an ISO date, or a duration back from now (`90s`, `10m`, `2h`, `1d`). */
  since?: string;
  /** Only events at or before this time (same forms as `since`). */
  until?: string;
  /** Output: readable (`pretty`) or one JSON object per line (`json`). */
  format?: 'pretty' | 'json';
}

/** A `key=value` filter. */
export interface FieldFilter {
  /** Path into the parameters (`user.email`). */
  path: string[];
  /** The wanted value as typed (`*` wildcards allowed). */
  value: string;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `--since` / `--until`: an ISO date, or a duration back from `now` (`90s`, `10m`, `2h`, `1d`). */
export function parseTime(text: string, flag: string, now = Date.now()): Date {
  const duration = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (duration) return new Date(now - Number(duration[1]) * UNITS[duration[2]!]!);
  const date = new Date(text);
  if (/\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(date.getTime())) return date;
  throw new CliError(`${flag} "${text}" is neither an ISO date (2026-11-21T06:00:00Z) nor a duration back from now (90s, 10m, 2h, 1d).`, { exitCode: 2 });
}

/** A glob (`user_*`, `?`) as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/** Parses `--field key=value`. */
export function parseFieldFilter(text: string): FieldFilter {
  const at = text.indexOf('=');
  if (at <= 0) throw new CliError(`--field "${text}" is not key=value (for example --field username=admin).`, { exitCode: 2 });
  return { path: text.slice(0, at).split('.'), value: text.slice(at + 1) };
}

function fieldMatches(kwargs: Record<string, unknown>, filter: FieldFilter): boolean {
  let value: unknown = kwargs;
  for (const part of filter.path) {
    if (value === null || typeof value !== 'object') return false;
    value = (value as Record<string, unknown>)[part];
  }
  if (value === undefined) return false;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return filter.value.includes('*') || filter.value.includes('?') ? globToRegExp(filter.value).test(text) : text === filter.value;
}

/** A predicate for the filters of `inspect`. */
export function eventFilter(flags: Pick<InspectFlags, 'event' | 'id' | 'field'>): (message: EventMessage) => boolean {
  const eventPattern = flags.event !== undefined ? globToRegExp(flags.event) : undefined;
  const fields = (flags.field ?? []).map(parseFieldFilter);
  return (message) =>
    (eventPattern === undefined || eventPattern.test(message.eventName)) &&
    (flags.id === undefined || message.id === flags.id) &&
    fields.every((f) => fieldMatches(message.kwargs, f));
}

/** One event as printed: readable lines or one JSON object per line. */
export function formatEvent(entry: HistoricalEvent, format: 'pretty' | 'json'): string {
  const { message } = entry;
  if (format === 'json') {
    return JSON.stringify({
      api: message.apiName,
      event: message.eventName,
      id: message.id,
      version: message.version,
      position: entry.position,
      time: entry.time?.toISOString(),
      parameters: message.kwargs,
    });
  }
  const when = entry.time ? entry.time.toISOString() : '(time unknown)';
  const params = JSON.stringify(message.kwargs, null, 2).split('\n').join('\n    ');
  return `${when}  ${message.apiName}.${message.eventName}  id=${message.id}  position=${entry.position}  version=${message.version}\n    ${params}`;
}

async function apiNames(bus: AnyBus, flag: string | undefined): Promise<string[]> {
  if (flag !== undefined) {
    const names = flag
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (names.length > 0) return names;
  }
  if (bus.registeredApis.length === 1) return [bus.registeredApis[0]!];
  const known = bus.knownApis.map((a) => a.name);
  if (known.length === 1) return [known[0]!];
  let onBus: string[] = [];
  try {
    onBus = Object.keys(await bus.loadSchemas()).sort();
  } catch {
    // listing is only a hint
  }
  const candidates = [...new Set([...known, ...onBus])];
  throw new CliError(
    `Name the API to inspect with --api NAME${candidates.length > 0 ? ` (known: ${candidates.join(', ')})` : ''}. It can be left out only when the bus module registers exactly one API.`,
    { exitCode: 2 },
  );
}

async function historyOf(bus: AnyBus, apiName: string): Promise<Required<Pick<EventTransport, 'history'>>> {
  const transport = await bus.transport(apiName, 'event');
  if (!transport.history || !transport.capabilities.history) {
    const name = Object.keys(bus.apiConfig(apiName).transports.event)[0] ?? 'configured';
    throw new CliError(`The ${name} event transport of API ${apiName} keeps no history, so there is nothing to inspect. Use a transport with history (redis, memory, nats).`);
  }
  return transport as Required<Pick<EventTransport, 'history'>>;
}

/** Reads up to `limit` matching events of the APIs, newest first. */
async function readMatching(
  sources: Array<{ apiName: string; transport: Required<Pick<EventTransport, 'history'>> }>,
  window: Pick<HistoryQuery, 'eventName' | 'since' | 'until'>,
  matches: (m: EventMessage) => boolean,
  limit: number,
): Promise<Array<HistoricalEvent & { apiName: string }>> {
  const out: Array<HistoricalEvent & { apiName: string }> = [];
  for (const { apiName, transport } of sources) {
    let count = 0;
    const query: HistoryQuery = { apiName, order: 'newest-first', ...window };
    for await (const entry of transport.history(query)) {
      if (!matches(entry.message)) continue;
      out.push({ ...entry, apiName });
      if (++count >= limit) break;
    }
  }
  // Merge APIs by time, newest first (entries without a time keep their order).
  out.sort((a, b) => (b.time?.getTime() ?? 0) - (a.time?.getTime() ?? 0));
  return out.slice(0, limit);
}

/** Prints the matching events. With `follow`, keeps polling until SIGINT/SIGTERM. */
export async function inspect(flags: InspectFlags): Promise<number> {
  const limit = flags.limit ?? 20;
  const format = flags.format ?? 'pretty';
  const matches = eventFilter(flags);
  // With no wildcard the transport can filter by event itself.
  const exactEvent = flags.event !== undefined && !/[*?]/.test(flags.event) ? flags.event : undefined;
  const { bus } = await obtainBus(flags, { allowFallback: true });
  try {
    const names = await apiNames(bus, flags.api);
    const sources = await Promise.all(names.map(async (apiName) => ({ apiName, transport: await historyOf(bus, apiName) })));
    // The newest position of each API before the first read: polls print what comes after it.
    // Taking it first (not after the read) means an event fired in between is not missed; the
    // positions printed by the first read are remembered so it is not printed twice either.
    const newest = new Map<string, string>();
    if (flags.follow) {
      for (const { apiName, transport } of sources) {
        for await (const entry of transport.history({ apiName, order: 'newest-first', limit: 1 })) newest.set(apiName, entry.position);
      }
    }
    const window: Pick<HistoryQuery, 'eventName' | 'since' | 'until'> = {};
    if (exactEvent !== undefined) window.eventName = exactEvent;
    if (flags.since !== undefined) window.since = parseTime(flags.since, '--since');
    if (flags.until !== undefined) window.until = parseTime(flags.until, '--until');
    const first = await readMatching(sources, window, matches, limit);
    if (!flags.follow) {
      for (const entry of first) console.log(formatEvent(entry, format));
      if (first.length === 0 && format === 'pretty') console.error(`No matching events on ${names.join(', ')}.`);
      return 0;
    }
    // Follow: print oldest first, so the newest is at the bottom (as tail -f does).
    for (const entry of [...first].reverse()) console.log(formatEvent(entry, format));
    const printed = new Set(first.map((e) => `${e.apiName}\u0000${e.position}`));
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      while (!stop.signal.aborted) {
        await new Promise<void>((resolvePromise) => {
          const timer = setTimeout(resolvePromise, flags.interval ?? 1000);
          stop.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolvePromise();
          }, { once: true });
        });
        if (stop.signal.aborted) break;
        // Everything newer than the last entry seen, matching or not, moves the marker on.
        for (const { apiName, transport } of sources) {
          const fresh: HistoricalEvent[] = [];
          for await (const entry of transport.history({ apiName, order: 'newest-first' })) {
            if (entry.position === newest.get(apiName)) break;
            fresh.push(entry);
            if (fresh.length >= 10_000) break;
          }
          if (fresh.length === 0) continue;
          newest.set(apiName, fresh[0]!.position);
          for (const entry of fresh.reverse()) {
            if (printed.delete(`${apiName}\u0000${entry.position}`)) continue;
            if ((exactEvent === undefined || entry.message.eventName === exactEvent) && matches(entry.message)) console.log(formatEvent(entry, format));
          }
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  } finally {
    await closeReadOnlyBus(bus);
  }
}
