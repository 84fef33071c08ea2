/** The messages between the orchestrator (cli.ts) and the processes it forks (child.ts). */
import type { RunContext, ScenarioName } from './common.js';

/** Which side a process (or, for in-process targets, a half of one) plays. */
export type Role = 'worker' | 'client';

/** What a child is told to do, in the LB_BENCH environment variable (JSON). */
export interface ChildSpec {
  /** `worker`, `client`, or `both` (in-process targets). */
  role: Role | 'both';
  /** Target id. */
  targetId: string;
  /** Names and addresses. */
  ctx: RunContext;
  /** Scenario parameters. */
  plan: ScenarioPlan;
}

/** How much to do in one run of a scenario. */
export interface ScenarioPlan {
  /** The scenario. */
  scenario: ScenarioName;
  /** Messages (events or calls) at most. */
  count: number;
  /** Milliseconds at most; the client stops sending when they have passed. */
  maxMs: number;
  /** Calls in flight for rpc-concurrent. */
  inFlight: number;
  /** Events per fireBatch in the bulk scenarios. */
  batch: number;
  /** Batches in flight in the bulk scenarios. */
  batchesInFlight: number;
  /** Bytes of filler in each event / call. */
  fillerBytes: number;
  /** Messages sent before the measured run (not counted): warms the JIT and the connections. */
  warmup: number;
}

/** What the client reports when its scenario is over. */
export interface ClientResult {
  /** Events fired or calls completed. */
  ops: number;
  /** CLOCK_MONOTONIC ns when the first message was sent. */
  startNs: number;
  /** CLOCK_MONOTONIC ns when the last was sent (events) or answered (RPC). */
  endNs: number;
  /** Round-trip latency (RPC scenarios). */
  latency?: { p50Ms: number; p99Ms: number; samples: number };
  /** CPU of the client process over the scenario. */
  cpuMs: number;
  /** Wall time of that window. */
  wallMs: number;
  /** Calls or fires that failed. */
  errors: number;
}

/** What the worker reports once it has handled what it was told to expect. */
export interface DrainResult {
  /** Events handled. */
  handled: number;
  /** When the last one was handled. */
  lastNs: number;
  /** End-to-end event latency (events-serial). */
  latency?: { p50Ms: number; p99Ms: number; samples: number };
}

/** What the worker reports when told to stop. */
export interface WorkerStats {
  /** CPU of the worker process from `go` to `stop`. */
  cpuMs: number;
  /** Wall time of that window. */
  wallMs: number;
  /** RSS (bytes) after the run, before closing (after a GC when exposed). */
  rssAfter: number;
  /** Heap used (bytes) at the same moment. */
  heapAfter: number;
  /** Peak RSS of the process (bytes), from resourceUsage().maxRSS. */
  maxRss: number;
}

/** Child → orchestrator. */
export type ChildMessage =
  | { from: Role; type: 'ready'; rss: number; heap: number }
  | { from: Role; type: 'handled' }
  | { from: Role; type: 'going' }
  | { from: Role; type: 'done'; result: ClientResult }
  | { from: Role; type: 'warmed'; result: ClientResult }
  | { from: Role; type: 'drained'; result: DrainResult }
  | { from: Role; type: 'stats'; stats: WorkerStats }
  | { from: Role; type: 'closed' }
  | { from: Role; type: 'error'; message: string };

/** Orchestrator → child. */
export type ParentMessage =
  | { to: Role; type: 'go' }
  | { to: Role; type: 'warmup' }
  | { to: Role; type: 'handled' }
  | { to: Role; type: 'expect'; count: number }
  | { to: Role; type: 'stop' };
