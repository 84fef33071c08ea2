/**
 * The start-up summary `lightbus run` prints: who this process is, what it serves, listens to
 * and runs, and which transport carries each role of each API.
 *
 * @module
 */
import type { BusDescription } from '@lightbus/core';

const ROLES = ['rpc', 'result', 'event', 'schema'] as const;

/** Which parts of the worker run (after `--only` / `--skip`). */
export interface WorkerParts {
  /** Serve RPCs. */
  rpcs: boolean;
  /** Run listeners. */
  events: boolean;
  /** Run scheduled tasks. */
  tasks: boolean;
}

/** The summary as readable lines. */
export function formatSummary(description: BusDescription, parts: WorkerParts, modulePath: string | undefined, configPath?: string): string {
  const off = (on: boolean) => (on ? '' : ' (disabled by --only/--skip)');
  const lines: string[] = [];
  lines.push('Lightbus worker started');
  if (modulePath) lines.push(`  bus module:   ${modulePath}`);
  lines.push(`  config:       ${configPath ?? '(none: LIGHTBUS_CONFIG is not set and the module passes its own, or the defaults apply)'}`);
  lines.push(`  service name: ${description.serviceName}`);
  lines.push(`  process name: ${description.processName}`);
  lines.push(`  APIs served${off(parts.rpcs)}: ${description.registeredApis.length > 0 ? description.registeredApis.join(', ') : '(none)'}`);
  lines.push(`  listeners${off(parts.events)}:${description.listeners.length > 0 ? '' : ' (none)'}`);
  for (const l of description.listeners) lines.push(`    ${l.listenerName}: ${l.events.join(', ')}`);
  lines.push(`  tasks${off(parts.tasks)}:${description.tasks.length > 0 ? '' : ' (none)'}`);
  for (const t of description.tasks) lines.push(`    ${t.name}: every ${t.intervalSeconds} s`);
  lines.push('  transports:');
  const names = Object.keys(description.transports);
  const width = Math.max(...names.map((n) => n.length), 7);
  lines.push(`    ${'API'.padEnd(width)}  ${ROLES.map((r) => r.padEnd(8)).join(' ')}`.trimEnd());
  for (const name of names) {
    const t = description.transports[name]!;
    lines.push(`    ${name.padEnd(width)}  ${ROLES.map((r) => (t[r] ?? '?').padEnd(8)).join(' ')}`.trimEnd());
  }
  return lines.join('\n');
}
