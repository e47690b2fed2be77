/**
 * The module-level API (API.md): functions acting on the initialized
 * scheduler, as the guide's examples use them.
 *
 * @module
 */

import type {
  ContextManager,
  ContextOptions,
  MemoryPressureHandler,
} from "./context/context_manager.ts";
import { placeContext } from "./context/placement.ts";
import type { DeviceBuffer } from "./context/device_buffer.ts";
import {
  type AllocOptions,
  type ContextUsage,
  ExecutionContext,
} from "./context/execution_context.ts";
import { requireCurrentContext } from "./context/session.ts";
import { GpuEvent, requireEvent } from "./event.ts";
import { getScheduler, type Scheduler } from "./scheduler.ts";
import type { Stream } from "./stream.ts";
import { show } from "./validate.ts";

/**
 * @internal The context manager of one device (default: the scheduler's
 * device): the one that device owns.
 */
export function contextManager(
  scheduler: Scheduler = getScheduler(),
  device: number = scheduler.device.id,
): ContextManager {
  return scheduler.deviceAt(device).contexts;
}

function requireContext(ctx: unknown, doing: string): ExecutionContext {
  if (!ExecutionContext.isReal(ctx)) {
    throw new TypeError(`${doing}: expected an ExecutionContext, got ${show(ctx)}`);
  }
  getScheduler();
  ctx.assertAlive(doing);
  return ctx;
}

/**
 * Creates an execution context: its own stream at its class's priority, a
 * VRAM budget, and a reservation (GUARANTEED: maxVram; BURSTABLE: baseVram;
 * BEST_EFFORT: none).
 *
 * @example
 * ```ts
 * import { createContext, destroyContext, GB, initialize, QoSPolicy, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host", hostMemory: 8 * GB });
 * const llm = createContext("llm", { maxVram: 4 * GB, qos: QoSPolicy.GUARANTEED });
 * const tts = createContext("tts", { maxVram: 2 * GB, baseVram: 1 * GB, qos: QoSPolicy.BURSTABLE });
 * assert.ok(llm.stream.priority < tts.stream.priority); // GUARANTEED is more urgent
 * destroyContext(tts);
 * shutdown();
 * ```
 *
 * @example On several devices
 * ```ts
 * import { createContext, GB, initialize, QoSPolicy, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host", hostDevices: 2, hostMemory: 8 * GB });
 * const llm = createContext("llm", { maxVram: 6 * GB, qos: QoSPolicy.GUARANTEED, device: 0 });
 * const tts = createContext("tts", { maxVram: 4 * GB, qos: QoSPolicy.GUARANTEED, device: "auto" });
 * assert.equal(llm.device, 0);
 * assert.equal(tts.device, 1); // 2 GiB left unreserved on device 0, 4 GiB on device 1
 * shutdown();
 * ```
 * @throws {TypeError | RangeError} for bad options, naming the option (a bad `device` index too)
 * @throws {AdmissionError} when its reservation cannot be honoured (with `"auto"`: on no device)
 */
export function createContext(name: string, options: ContextOptions): ExecutionContext {
  const scheduler = getScheduler();
  const managers = scheduler.units.map((device) => device.contexts);
  return managers[placeContext(scheduler, managers, name, options)]!.create(name, options);
}

/**
 * Destroys a context: frees its buffers, events and stream, and releases
 * its reservation. Idempotent.
 *
 * @example Giving a reservation back
 * ```ts
 * import { createContext, destroyContext, getAvailableVram, GB, initialize, QoSPolicy, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host", hostMemory: 8 * GB });
 * const before = getAvailableVram();
 * const llm = createContext("llm", { maxVram: 4 * GB, qos: QoSPolicy.GUARANTEED });
 * assert.equal(getAvailableVram(), before - 4 * GB);
 * destroyContext(llm);
 * destroyContext(llm); // idempotent
 * assert.equal(getAvailableVram(), before);
 * shutdown();
 * ```
 * @throws {TypeError} when `ctx` is not an ExecutionContext
 */
export function destroyContext(ctx: ExecutionContext): void {
  if (!ExecutionContext.isReal(ctx)) {
    throw new TypeError(`Cannot destroy a context: expected an ExecutionContext, got ${show(ctx)}`);
  }
  ctx.destroy();
}

/**
 * Allocates device memory in the current session's context.
 *
 * @example
 * ```ts
 * import { alloc, contextSession, createContext, initialize, MB, shutdown } from "@gpusched/core";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * {
 *   using _s = contextSession(llm);
 *   using _buf = alloc(4 * MB, { evictable: true });
 * }
 * shutdown();
 * ```
 * @throws {NoActiveSessionError} outside any session
 * @throws {VramBudgetExceededError} past the budget or what the device can give
 */
export function alloc(bytes: number, options?: AllocOptions): DeviceBuffer {
  return requireCurrentContext("Cannot allocate").alloc(bytes, options);
}

/**
 * Bytes a new reservation or best-effort allocation could still get on a
 * device (default: the scheduler's device). Memory that pools cache for
 * reuse counts as available.
 *
 * @example
 * ```ts
 * import { GB, getAvailableVram, initialize, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host", hostDevices: 2, memoryLimit: [4 * GB, 2 * GB] });
 * assert.equal(getAvailableVram(), 4 * GB);
 * assert.equal(getAvailableVram(1), 2 * GB);
 * shutdown();
 * ```
 * @throws {TypeError | RangeError} for a bad device index, naming `device`
 * @throws {SchedulerError} when the scheduler is not initialized
 */
export function getAvailableVram(device?: number): number {
  const scheduler = getScheduler();
  const index = device === undefined
    ? scheduler.device.id
    : scheduler.requireDevice(device, "Cannot read available VRAM");
  return contextManager(scheduler, index).availableVram();
}

/**
 * Bytes used, max, base, reserved, peak, cached and evicted of a context.
 *
 * @example
 * ```ts
 * import { contextSession, createContext, getContextUsage, initialize, MB, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * {
 *   using _s = contextSession(llm);
 *   using _buf = llm.alloc(4 * MB);
 *   assert.equal(getContextUsage(llm).used, 4 * MB);
 *   assert.equal(getContextUsage(llm).max, 64 * MB);
 * }
 * shutdown();
 * ```
 * @throws {TypeError} when `ctx` is not an ExecutionContext
 * @throws {SchedulerError} when the context was destroyed
 */
export function getContextUsage(ctx: ExecutionContext): ContextUsage {
  return requireContext(ctx, "Cannot read context usage").usage();
}

/**
 * Registers a memory-pressure handler; returns the function that removes it.
 * The handler must return a boolean synchronously: `true` lets the scheduler
 * make room, `false` refuses (nothing is evicted), a throw refuses with the
 * error as `cause`, and any other result (a Promise, `undefined`, a number)
 * refuses with a `TypeError` as the `cause` of the `VramBudgetExceededError`.
 *
 * @example
 * ```ts
 * import { initialize, onMemoryPressure, shutdown } from "@gpusched/core";
 * initialize({ backend: "host" });
 * const off = onMemoryPressure((_ctx, requested, available) => available > requested * 0.5);
 * off();
 * shutdown();
 * ```
 */
export function onMemoryPressure(handler: MemoryPressureHandler): () => void {
  return contextManager().onMemoryPressure(handler);
}

/**
 * The context's stream (`handle` is what your own kernels launch on).
 *
 * @example
 * ```ts
 * import { createContext, getStream, initialize, MB, QoSPolicy, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
 * const stream = getStream(llm);
 * assert.equal(stream, llm.stream);
 * await stream.synchronize(); // resolves when its queued work is done
 * shutdown();
 * ```
 * @throws {TypeError} when `ctx` is not an ExecutionContext
 * @throws {SchedulerError} when the context was destroyed
 */
export function getStream(ctx: ExecutionContext): Stream {
  return requireContext(ctx, "Cannot get a stream").stream;
}

/**
 * Records an event at the current tail of the context's stream.
 *
 * @example Producer / consumer
 * ```ts
 * import { createContext, initialize, MB, recordEvent, shutdown, waitEvent } from "@gpusched/core";
 * initialize({ backend: "host" });
 * const producer = createContext("producer", { maxVram: 64 * MB });
 * const consumer = createContext("consumer", { maxVram: 64 * MB });
 * const ready = recordEvent(producer);
 * waitEvent(consumer, ready); // consumer's later work runs after producer's
 * await ready.synchronize();
 * shutdown();
 * ```
 */
export function recordEvent(ctx: ExecutionContext): GpuEvent {
  const context = requireContext(ctx, "Cannot record an event");
  // A recycled native event of the context's stream (see event_ring.ts):
  // calling this once per token for days keeps native handles flat.
  return GpuEvent.recordOn(getScheduler(), context.stream, "record an event");
}

/**
 * Makes the context's stream wait for `event` on the device; the host does
 * not block. The event may come from a context on another device.
 *
 * @example Handing a buffer from one model to the next
 * ```ts
 * import { createContext, initialize, MB, recordEvent, shutdown, waitEvent } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * const tts = createContext("tts", { maxVram: 64 * MB });
 * using text = llm.alloc(1 * MB);
 * const written = text.write(new Uint8Array(text.size).fill(7)); // on llm's stream
 * waitEvent(tts, recordEvent(llm)); // tts's later work runs after the write
 * await written;
 * const seen = new Uint8Array(text.size);
 * await text.read(seen);
 * assert.equal(seen[0], 7);
 * shutdown();
 * ```
 * @throws {TypeError} when `ctx` is not an ExecutionContext or `event` not a GpuEvent
 */
export function waitEvent(ctx: ExecutionContext, event: GpuEvent): void {
  const context = requireContext(ctx, "Cannot wait for an event");
  requireEvent(event, "event", "Cannot wait for an event").wait(context.stream);
}
