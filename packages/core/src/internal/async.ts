/** Small async helpers shared by the runtime and the in-memory transports. @module */

/** A promise with its resolve function exposed, re-armed after each wake-up. */
export class Notifier {
  #waiters: Array<() => void> = [];

  /** Wakes every current waiter. */
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Waits for {@link notify}, at most `timeoutMs` (when given), or until `signal` aborts.
   * Never rejects.
   */
  wait(signal?: AbortSignal, timeoutMs?: number): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      };
      this.#waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) timer = setTimeout(done, Math.max(0, timeoutMs));
    });
  }
}

/** Resolves after `ms`, or early (without error) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A counting semaphore: at most `limit` holders at once. */
export class Semaphore {
  #available: number;
  readonly #queue: Array<() => void> = [];
  #idle = new Notifier();

  /** @param limit how many may hold it at once (at least 1) */
  constructor(readonly limit: number) {
    this.#available = Math.max(1, Math.floor(limit));
  }

  /** How many currently hold it. */
  get inUse(): number {
    return Math.max(1, Math.floor(this.limit)) - this.#available;
  }

  /** Waits for a free place. */
  async acquire(): Promise<void> {
    if (this.#available > 0) {
      this.#available--;
      return;
    }
    await new Promise<void>((resolve) => this.#queue.push(resolve));
  }

  /** Takes a free place at once when there is one (no promise, no tick); false otherwise. */
  tryAcquire(): boolean {
    if (this.#available > 0 && this.#queue.length === 0) {
      this.#available--;
      return true;
    }
    return false;
  }

  /** Frees a place. */
  release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else {
      this.#available++;
      if (this.inUse === 0) this.#idle.notify();
    }
  }

  /** Resolves when nobody holds it, or after `timeoutMs`. Returns true when idle. */
  async whenIdle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.inUse > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.#idle.wait(undefined, left);
    }
    return true;
  }
}

/**
 * Waits for `promise` at most `ms`. Resolves true when it settled in time. The timer is cleared
 * either way, so nothing is left to hold the process open.
 */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
