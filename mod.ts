/**
 * gpusched: several AI models sharing NVIDIA GPUs safely inside one Deno
 * process. Each model gets an execution context with its own streams, a
 * VRAM budget and a QoS class; libsched (C/CUDA, loaded with `Deno.dlopen`)
 * does the device work, on CUDA or on a host (CPU) backend with the same
 * semantics.
 *
 * A short tour:
 * - `initialize()` / `shutdown()` start and stop the scheduler on a backend.
 * - `Scheduler.createStream()` and `Scheduler.createEvent()` give ordered
 *   queues of device work and completion points; `await stream.synchronize()`
 *   never blocks the event loop.
 * - `QosPolicyEvaluator` admits `QosTaskMeta` tasks by QoS class
 *   (`QoSPolicy`), reserving memory and compute shares, and maps each class
 *   onto the device's stream priority range.
 * - `PartitionManager` splits the device's SMs into partitions (CUDA green
 *   contexts): a stream made in a partition runs its kernels on that
 *   partition's SMs alone, whatever floods the rest of the device.
 * - `getMetrics()` / `formatPrometheus()` give a snapshot of every device
 *   and context (bytes and counters) as data or as Prometheus text;
 *   `startTrace()` / `stopTrace()` record the scheduler's own events as a
 *   Chrome trace (Perfetto).
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * const sched = initialize({ backend: "host" });
 * const stream = sched.createStream();
 * await stream.synchronize();
 * shutdown();
 * ```
 *
 * @module
 */

export { GB, KB, MB } from "./src/units.ts";
export {
  AdmissionError,
  NativeError,
  NoActiveSessionError,
  type PoolAsker,
  SchedulerError,
  VramBudgetExceededError,
} from "./src/errors.ts";
export {
  type BackendName,
  cudaUnavailableReason,
  type EventOptions,
  getScheduler,
  initialize,
  type InitializeOptions,
  Scheduler,
  shutdown,
  type StreamOptions,
} from "./src/scheduler.ts";
export type { DeviceInfo, MemoryInfo } from "./src/device_info.ts";
export { Stream } from "./src/stream.ts";
export { GpuEvent } from "./src/event.ts";
export { QoSPolicy } from "./src/engine/qos_policy.ts";
export {
  type BestEffortTaskOptions,
  type BurstableTaskOptions,
  type GuaranteedTaskOptions,
  type QosTaskInit,
  QosTaskMeta,
} from "./src/engine/qos_task.ts";
export { type QosDecision, QosEvaluation } from "./src/engine/qos_evaluation.ts";
export {
  type QosEvaluatorOptions,
  QosPolicyEvaluator,
  type QosReservation,
} from "./src/engine/qos_evaluator.ts";
export type { PriorityRange, QosPriorityBand } from "./src/engine/qos_priority.ts";
export {
  type AllocateOptions,
  MemoryPool,
  type MemoryPoolOptions,
  type MemoryPoolStats,
} from "./src/engine/memory_pool.ts";
export {
  type BlockPin,
  type BlockState,
  type CopyFromOptions,
  PoolBlock,
  type TransferOptions,
} from "./src/engine/pool_block.ts";
export {
  alloc,
  createContext,
  destroyContext,
  getAvailableVram,
  getContextUsage,
  getStream,
  onMemoryPressure,
  recordEvent,
  waitEvent,
} from "./src/api.ts";
export { type ContextOptions, type MemoryPressureHandler } from "./src/context/context_manager.ts";
export {
  type AllocOptions,
  type ContextUsage,
  ExecutionContext,
} from "./src/context/execution_context.ts";
export { DeviceBuffer } from "./src/context/device_buffer.ts";
export { type ContextScope, contextSession, currentContext } from "./src/context/session.ts";
export {
  PartitionConfig,
  type PartitionConfigOptions,
  PartitionLimits,
  type PartitionLimitsInit,
} from "./src/engine/partition.ts";
export {
  type PartitionInfo,
  PartitionManager,
  type PartitionStreamOptions,
} from "./src/engine/partition_manager.ts";
export type { Liveness, Owned, Owner } from "./src/lifetime.ts";
export {
  type ContextCounters,
  type ContextMetrics,
  type DeviceMetrics,
  getMetrics,
  type Metrics,
} from "./src/metrics/snapshot.ts";
export { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "./src/metrics/prometheus.ts";
export {
  isTracing,
  readTrace,
  startTrace,
  stopTrace,
  type TraceOptions,
  traceSpan,
  type TraceSpanOptions,
} from "./src/trace/trace.ts";
export type { ChromeTrace, ChromeTraceEvent } from "./src/trace/chrome.ts";
