/**
 * Errors the CLI reports to the user, and how any error becomes the one-paragraph message the
 * `lightbus` command prints before exiting non-zero.
 *
 * @module
 */
import { describeError, LightbusError, redactUrl } from '@lightbus/core';

/** An error with a message meant for the user as it is, and the exit code to leave with. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: number;

  /**
   * @param message what went wrong and what to do, in one paragraph
   * @param options exit code (default 1) and the underlying error
   */
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Options of {@link formatFatal}. */
export interface FormatFatalOptions {
  /** Prefix of the message, e.g. `lightbus run: cannot start`. */
  prefix: string;
  /** Append the stack trace (and causes) — `--log-level debug`. */
  debug?: boolean;
}

/**
 * The message printed for an error that ends a command: the error's own message (core's
 * errors already say what to do), its code for Lightbus errors, and the stack only in debug.
 * Credentials embedded in URLs are masked.
 */
export function formatFatal(error: unknown, options: FormatFatalOptions): string {
  let text: string;
  if (error instanceof CliError) {
    text = `${options.prefix}: ${error.message}`;
  } else if (LightbusError.isInstance(error)) {
    text = `${options.prefix}: ${error.message} [${error.code}]`;
    const cause = (error as Error).cause;
    if (cause !== undefined && !LightbusError.isInstance(cause)) {
      const causeText = describeError(cause);
      if (!error.message.includes(causeText)) text += `\n  caused by ${causeText}`;
    }
  } else if (error instanceof Error) {
    text = `${options.prefix}: ${error.name}: ${error.message}`;
  } else {
    text = `${options.prefix}: ${String(error)}`;
  }
  if (options.debug) {
    let current: unknown = error;
    const seen = new Set<unknown>();
    while (current instanceof Error && !seen.has(current)) {
      seen.add(current);
      if (current.stack) text += `\n\n${current.stack}`;
      current = current.cause;
    }
  } else if (!(error instanceof CliError) && !LightbusError.isInstance(error)) {
    text += '\n(Run with --log-level debug to see the stack trace.)';
  }
  return redactUrl(text);
}
