/**
 * Decoding stream replies read with binary bulk strings.
 *
 * A text reply costs ioredis two allocations per bulk string (a `Buffer` view, then its string)
 * and a copy of every array; a Lightbus event is 15 bulk strings (its id and seven field/value
 * pairs), most of them the same from one entry to the next: the field names, `api_name`,
 * `event_name` and `version`. Read as binary, those are compared with the bytes of the previous
 * entry's and reuse its string; only the others are converted. Measured on the bench machine:
 * callgrind, a worker that starts and drains 60,000 events, 5.65 → 5.29 billion instructions
 * and about 340 fewer bytes allocated per event; a captured 100-entry reply decodes in about
 * 1.1 µs per entry.
 *
 * @module
 */

// Imported, not the global: a global lookup on every bulk string cost about 0.25 µs per entry.
import { Buffer } from 'node:buffer';

/** A stream entry: its id and its flat field/value list (null when the entry was deleted). */
export type RawEntry = [id: string, fields: string[] | null];
/** An XREADGROUP/XREAD reply: per stream, its entries. */
export type ReadReply = Array<[stream: string, entries: RawEntry[]]> | null;

/** Positions (in an entry's field list) whose strings are remembered; wider entries convert the rest. */
const MAX_SLOTS = 64;

/** Metadata fields whose values repeat from entry to entry (`id` does not). */
const REPEATING_VALUES = new Set(['api_name', 'event_name', 'version']);

/**
 * Turns XREADGROUP / XREAD replies read with binary bulk strings into what a text reply holds,
 * reusing the strings of repeated field names and metadata values. One per read loop (it
 * remembers the last entry it saw). Strings in a reply (a client without binary replies) pass
 * through unchanged.
 */
export class StreamReplyDecoder {
  /** Per position in the field list: the bytes last seen there (a copy) and their string. */
  readonly #bytes: Array<Buffer | undefined> = [];
  readonly #texts: string[] = [];
  /** Per field-name position: whether the name there is one of {@link REPEATING_VALUES}. */
  readonly #repeats: boolean[] = [];
  #streamBytes: Buffer | undefined;
  #streamText = '';

  /** The reply as text, in the shape of {@link ReadReply}. */
  decode(reply: unknown): ReadReply {
    if (!Array.isArray(reply)) return null;
    const out: Array<[string, RawEntry[]]> = [];
    for (const item of reply as Array<[unknown, unknown]>) {
      const [stream, entries] = item;
      let list: RawEntry[] = [];
      if (Array.isArray(entries)) {
        list = new Array<RawEntry>(entries.length);
        for (let j = 0; j < entries.length; j++) {
          const [id, fields] = entries[j] as [unknown, unknown];
          list[j] = [text(id), Array.isArray(fields) ? this.#fields(fields) : null];
        }
      }
      out.push([this.#stream(stream), list]);
    }
    return out;
  }

  #stream(value: unknown): string {
    if (!Buffer.isBuffer(value)) return text(value);
    if (this.#streamBytes === undefined || !sameBytes(this.#streamBytes, value)) {
      this.#streamText = value.toString();
      this.#streamBytes = Buffer.from(value);
    }
    return this.#streamText;
  }

  #fields(raw: readonly unknown[]): string[] {
    const n = raw.length;
    const fields = new Array<string>(n);
    const bytes = this.#bytes;
    const texts = this.#texts;
    for (let i = 0; i < n; i += 2) {
      const name = raw[i];
      /** Whether this field's value repeats from entry to entry (api_name, event_name, version). */
      let repeats: boolean;
      if (i < MAX_SLOTS && Buffer.isBuffer(name)) {
        const seen = bytes[i];
        if (seen !== undefined && sameBytes(seen, name)) {
          fields[i] = texts[i]!;
          repeats = this.#repeats[i] === true;
        } else {
          const decoded = this.#store(name, i);
          fields[i] = decoded;
          repeats = REPEATING_VALUES.has(decoded);
          this.#repeats[i] = repeats;
        }
      } else {
        fields[i] = text(name);
        repeats = false; // not remembered: neither is its value
      }
      if (i + 1 < n) {
        const value = raw[i + 1];
        if (!repeats || i + 1 >= MAX_SLOTS || !Buffer.isBuffer(value)) fields[i + 1] = text(value);
        else {
          const seen = bytes[i + 1];
          fields[i + 1] = seen !== undefined && sameBytes(seen, value) ? texts[i + 1]! : this.#store(value, i + 1);
        }
      }
    }
    return fields;
  }

  /** Decodes `value` and remembers its bytes and string at `slot`. */
  #store(value: Buffer, slot: number): string {
    const decoded = value.toString();
    // A copy: the reply's buffers are views of the socket's read buffer.
    this.#bytes[slot] = Buffer.from(value);
    this.#texts[slot] = decoded;
    return decoded;
  }
}

/** A bulk string as text (UTF-8, as ioredis decodes text replies). */
function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString();
  return String(value);
}

/** Byte equality; short buffers compared in JavaScript (cheaper than a native call). */
function sameBytes(a: Buffer, b: Buffer): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (n > 32) return a.equals(b);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
