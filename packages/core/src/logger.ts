/**
 * A minimal structured logger interface, and the console logger used by default. Pass your own
 * (pino, winston...) with `createBus({ logger })`; any object with these four methods fits.
 *
 * @module
 */

/** Log levels, from most to least verbose. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** What Lightbus logs through. */
export interface Logger {
  /** Detail useful when debugging. */
  debug(message: string, fields?: LogFields): void;
  /** Normal operation (start-up summary, listeners started). */
  info(message: string, fields?: LogFields): void;
  /** Something went wrong but work goes on (a skipped malformed message). */
  warn(message: string, fields?: LogFields): void;
  /** Something failed (a handler threw, a connection dropped). */
  error(message: string, fields?: LogFields): void;
  /**
   * Optional: whether messages of `level` are written. Hot paths (one line per event) skip
   * building the message when this says no; a logger without it gets every call.
   */
  enabled?(level: Exclude<LogLevel, 'silent'>): boolean;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Options of {@link createConsoleLogger}. */
export interface ConsoleLoggerOptions {
  /** Lowest level printed. Default `info`, or `LIGHTBUS_LOG_LEVEL` when set. */
  level?: LogLevel;
  /** One JSON object per line (for production log collectors) instead of readable text. Default: true when `LIGHTBUS_LOG_FORMAT=json`. */
  json?: boolean;
  /** Where lines go. Default: `console.error` (stderr), keeping stdout for the program. */
  write?: (line: string) => void;
}

const SECRET_KEY = /pass(word)?|secret|token|credential|authorization/i;

/** Replaces secret-looking values and credentials embedded in URLs before they reach a log. */
export function redact(fields: LogFields | undefined): LogFields | undefined {
  if (fields === undefined) return undefined;
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (SECRET_KEY.test(key)) out[key] = '[redacted]';
    else if (typeof value === 'string') out[key] = redactUrl(value);
    else if (value instanceof Error) out[key] = { name: value.name, message: redactUrl(value.message) };
    else out[key] = value;
  }
  return out;
}

/** Hides the password part of `scheme://user:password@host` URLs inside a string. */
export function redactUrl(text: string): string {
  return text.replace(/(\w[\w+.-]*:\/\/[^:/@\s]*:)[^@\s/]+@/g, '$1***@');
}

/** A logger that prints to stderr, as text or JSON lines. */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const envLevel = process.env['LIGHTBUS_LOG_LEVEL'] as LogLevel | undefined;
  const level = options.level ?? (envLevel && envLevel in ORDER ? envLevel : 'info');
  const write = options.write ?? ((line: string) => console.error(line));
  const json = options.json ?? process.env['LIGHTBUS_LOG_FORMAT'] === 'json';
  const emit = (lvl: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields) => {
    if (ORDER[lvl] < ORDER[level]) return;
    const safe = redact(fields);
    if (json) {
      write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg: redactUrl(message), ...safe }));
    } else {
      const extra = safe && Object.keys(safe).length > 0 ? ' ' + JSON.stringify(safe) : '';
      write(`[lightbus] ${lvl.toUpperCase().padEnd(5)} ${redactUrl(message)}${extra}`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    enabled: (lvl) => ORDER[lvl] >= ORDER[level],
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, enabled: () => false };
