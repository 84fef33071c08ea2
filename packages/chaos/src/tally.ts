/**
 * Counting what happened to every event of a scenario: fired (the broker accepted it),
 * handled (a handler finished it), duplicates (finished more than once) and lost (fired, never
 * finished).
 *
 * @module
 */

/** One row of a chaos table. */
export interface ScenarioRow {
  /** The transport under test. */
  transport: string;
  /** What was done. */
  scenario: string;
  /** Events (or calls) the broker accepted. */
  fired: number;
  /** Distinct events finished by a handler (or calls that ended as expected). */
  handled: number;
  /** Extra handler completions beyond the first, summed over all events. */
  duplicates: number;
  /** Fired but never handled (or calls that hung or ended wrongly). */
  lost: number;
  /** Anything else worth printing (dead letters, time to recover, CPU during an outage). */
  notes: string;
}

/** Counts fired and handled events by sequence number. */
export class Tally {
  /** Sequence numbers whose fire() resolved. */
  readonly fired = new Set<number>();
  /** fire() calls that rejected (the broker may or may not have the event). */
  fireErrors = 0;
  /** Handler starts per sequence number. */
  readonly starts = new Map<number, number>();
  /** Handler completions per sequence number. */
  readonly done = new Map<number, number>();
  /** Handler failures per sequence number (poison). */
  readonly failures = new Map<number, number>();
  /** Things a handler received that were not proper events. */
  readonly corrupt: string[] = [];

  /** Records a handler start. */
  started(seq: number): void {
    this.starts.set(seq, (this.starts.get(seq) ?? 0) + 1);
  }

  /** Records a handler completion. */
  finished(seq: number): void {
    this.done.set(seq, (this.done.get(seq) ?? 0) + 1);
  }

  /** Records a handler failure. */
  failed(seq: number): void {
    this.failures.set(seq, (this.failures.get(seq) ?? 0) + 1);
  }

  /** Distinct fired events finished at least once. */
  get handledCount(): number {
    let n = 0;
    for (const seq of this.fired) if (this.done.has(seq)) n++;
    return n;
  }

  /** Completions beyond the first, over every fired event. */
  get duplicates(): number {
    let n = 0;
    for (const seq of this.fired) n += Math.max(0, (this.done.get(seq) ?? 0) - 1);
    return n;
  }

  /** Fired events never finished. */
  lostSeqs(): number[] {
    return [...this.fired].filter((seq) => !this.done.has(seq)).sort((a, b) => a - b);
  }

  /** Events started but never finished (in flight when a process died). */
  unfinishedStarts(): number[] {
    return [...this.starts.keys()].filter((seq) => !this.done.has(seq) && !this.failures.has(seq));
  }

  /** True when every fired event was handled. */
  get complete(): boolean {
    return this.handledCount === this.fired.size;
  }

  /** The table row. */
  row(transport: string, scenario: string, notes = ''): ScenarioRow {
    return { transport, scenario, fired: this.fired.size, handled: this.handledCount, duplicates: this.duplicates, lost: this.lostSeqs().length, notes };
  }
}

/** Formats rows as a fixed-width text table, one per transport. */
export function formatTable(rows: readonly ScenarioRow[]): string {
  const out: string[] = [];
  const transports = [...new Set(rows.map((r) => r.transport))];
  const headers = ['scenario', 'fired', 'handled', 'duplicates', 'lost', 'notes'] as const;
  for (const transport of transports) {
    const mine = rows.filter((r) => r.transport === transport);
    const cells = mine.map((r) => [r.scenario, String(r.fired), String(r.handled), String(r.duplicates), String(r.lost), r.notes]);
    const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (values: readonly string[]) =>
      values.map((v, i) => (i >= 1 && i <= 4 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(' | ').trimEnd();
    out.push(`Chaos: ${transport}`, line(headers), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.map(line), '');
  }
  return out.join('\n');
}
