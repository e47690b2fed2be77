/**
 * `getMetrics()`: a plain, JSON-serialisable snapshot of what each device
 * and each live context holds, and what happened to each context so far.
 *
 * @module
 */

import type { ExecutionContext } from "../context/execution_context.ts";
import type { QoSPolicy } from "../engine/qos_policy.ts";
import { getScheduler } from "../scheduler.ts";

/** One device in `Metrics.devices`, in bytes. */
export interface DeviceMetrics {
  /** Device index (what `ExecutionContext.device` holds). */
  index: number;
  /** e.g. `"NVIDIA H200"` or `"Host CPU (simulated device)"`. */
  name: string;
  /** Bytes of device memory the scheduler manages on it. */
  memoryLimit: number;
  /** Bytes a new reservation or best-effort allocation could still get (as `getAvailableVram()`). */
  available: number;
}

/** What happened to a context since it was created; every count starts at 0 with it. */
export interface ContextCounters {
  /** Successful allocations, from the pool's cache or not. */
  allocations: number;
  /** `VramBudgetExceededError`s thrown for its allocations. */
  allocationFailures: number;
  /** Buffers of it moved out to host memory. */
  evictions: number;
  /** Buffers of it moved back to the device. */
  restores: number;
  /** Calls of memory-pressure handlers made for its allocations. */
  pressureEvents: number;
}

/** One live context in `Metrics.contexts`, in bytes (see `getContextUsage()`). */
export interface ContextMetrics {
  /** The context's name. */
  name: string;
  /** Its QoS class. */
  qos: QoSPolicy;
  /** Index of the device it lives on. */
  device: number;
  /** Bytes held by its live buffers. */
  used: number;
  /** Its budget (`maxVram`). */
  max: number;
  /** Bytes reserved for it. */
  reserved: number;
  /** Freed bytes its pool keeps for reuse (available to everyone). */
  cached: number;
  /** Bytes of its buffers currently moved out to host memory. */
  evicted: number;
  /** Highest `used` seen. */
  peak: number;
  /** Event counts since creation. */
  counters: ContextCounters;
}

/** What `getMetrics()` returns: plain data, safe to `JSON.stringify` and to keep. */
export interface Metrics {
  /** Every device the scheduler manages, by index. */
  devices: DeviceMetrics[];
  /** Every live context, in creation order. */
  contexts: ContextMetrics[];
}

/**
 * A snapshot of every device and live context: memory in bytes and event
 * counters. Plain data: later changes do not alter it.
 *
 * @example
 * ```ts
 * import { createContext, getMetrics, initialize, MB, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * llm.alloc(1 * MB).free();
 * const m = getMetrics();
 * assert.equal(m.contexts[0]!.name, "llm");
 * assert.equal(m.contexts[0]!.counters.allocations, 1);
 * assert.equal(m.contexts[0]!.cached, 1 * MB);
 * assert.equal(JSON.parse(JSON.stringify(m)).devices[0].index, 0);
 * shutdown();
 * ```
 * @throws {SchedulerError} before `initialize()`
 */
export function getMetrics(): Metrics {
  const scheduler = getScheduler();
  return {
    devices: scheduler.units.map((device) => ({
      index: device.info.id,
      name: device.info.name,
      memoryLimit: device.memoryLimit,
      available: device.contexts.availableVram(),
    })),
    contexts: scheduler.deviceAt().contexts.allContexts().map(contextMetrics),
  };
}

function contextMetrics(ctx: ExecutionContext): ContextMetrics {
  const usage = ctx.usage();
  const pool = ctx.pool.stats();
  return {
    name: ctx.name,
    qos: ctx.qos,
    device: ctx.device,
    used: usage.used,
    max: usage.max,
    reserved: usage.reserved,
    cached: usage.cached,
    evicted: usage.evicted,
    peak: usage.peak,
    counters: {
      allocations: pool.allocationCount,
      allocationFailures: ctx.tallies.allocationFailures,
      evictions: pool.evictionCount,
      restores: pool.restoreCount,
      pressureEvents: ctx.tallies.pressureEvents,
    },
  };
}
