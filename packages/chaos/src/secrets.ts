/**
 * Checking that secrets stay out of what a user sees: error messages (with their causes and
 * JSON form) and log lines.
 *
 * @module
 */

/** Every piece of text an error exposes: message, stack, JSON form, details, and the same for each cause. */
export function errorTexts(error: unknown, depth = 0): string[] {
  if (depth > 8 || error === null || error === undefined) return [];
  if (typeof error !== 'object') return [typeof error === 'string' ? error : JSON.stringify(error) ?? ''];
  const e = error as { message?: unknown; stack?: unknown; cause?: unknown; details?: unknown };
  const out: string[] = [typeof e.message === 'string' ? e.message : '', typeof e.stack === 'string' ? e.stack : ''];
  try {
    out.push(JSON.stringify(error));
  } catch {
    // circular: the other texts are enough
  }
  if (e.details !== undefined) out.push(JSON.stringify(e.details));
  out.push(...errorTexts(e.cause, depth + 1));
  return out;
}

/** The texts (of `texts`) that contain any of `secrets`, each cut around the secret. */
export function leaks(texts: readonly string[], secrets: readonly string[]): string[] {
  const found: string[] = [];
  for (const text of texts) {
    for (const secret of secrets) {
      if (!secret) continue;
      const i = text.indexOf(secret);
      if (i >= 0) found.push(`…${text.slice(Math.max(0, i - 60), i)}[SECRET]${text.slice(i + secret.length, i + secret.length + 20)}…`);
    }
  }
  return found;
}
