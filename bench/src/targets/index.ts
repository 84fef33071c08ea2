/**
 * Every target the harness knows, by id (`transport-kind`). Targets are described here and
 * loaded on demand, so that a worker process imports only its own client library (its RSS at
 * rest then shows what that stack costs, not every library the harness knows).
 */
import type { Target, TargetKind, TransportName } from '../common.js';

/** What the orchestrator needs to know about a target without loading it. */
export interface TargetInfo {
  /** `transport-kind`. */
  id: string;
  /** Transport. */
  transport: TransportName;
  /** Who drives it. */
  kind: TargetKind;
  /** True when both sides must share one process (the memory transport). */
  inProcess?: boolean;
  /** Loads the implementation. */
  load(): Promise<Target>;
}

/** All targets, in the order the table lists them. */
export const TARGETS: readonly TargetInfo[] = [
  { id: 'memory-bus', transport: 'memory', kind: 'bus', inProcess: true, load: async () => (await import('./bus.js')).busTarget('memory') },
  { id: 'redis-bus', transport: 'redis', kind: 'bus', load: async () => (await import('./bus.js')).busTarget('redis') },
  { id: 'redis-raw', transport: 'redis', kind: 'raw', load: async () => (await import('./raw-redis.js')).rawRedisTarget },
  { id: 'redis-raw-wire', transport: 'redis', kind: 'raw-wire', load: async () => (await import('./raw-redis-wire.js')).rawRedisWireTarget },
  { id: 'redis-moleculer', transport: 'redis', kind: 'moleculer', load: async () => (await import('./moleculer.js')).moleculerTarget('redis') },
  { id: 'nats-bus', transport: 'nats', kind: 'bus', load: async () => (await import('./bus.js')).busTarget('nats') },
  { id: 'nats-raw', transport: 'nats', kind: 'raw', load: async () => (await import('./raw-nats.js')).rawNatsTarget },
  { id: 'nats-moleculer', transport: 'nats', kind: 'moleculer', load: async () => (await import('./moleculer.js')).moleculerTarget('nats') },
  { id: 'amqp-bus', transport: 'amqp', kind: 'bus', load: async () => (await import('./bus.js')).busTarget('amqp') },
  { id: 'amqp-raw', transport: 'amqp', kind: 'raw', load: async () => (await import('./raw-amqp.js')).rawAmqpTarget },
];

/** The target with that id, loaded. */
export async function loadTarget(id: string): Promise<Target> {
  const info = TARGETS.find((t) => t.id === id);
  if (!info) throw new Error(`Unknown target "${id}". Known: ${TARGETS.map((t) => t.id).join(', ')}.`);
  return info.load();
}
