/**
 * The demo's execution contexts: budgets and QoS classes, as the guide's
 * complete example gives them, and on request an SM partition for the llm.
 *
 * @module
 */
import {
  createContext,
  type ExecutionContext,
  MB,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
} from "../../mod.ts";

/** Device memory the scheduler manages: small, so that the contexts compete for it. */
export const MEMORY_LIMIT = 192 * MB;

/** The contexts, and what was done about SM partitions. */
export interface DemoContexts {
  /** GUARANTEED: its whole budget reserved, the most urgent stream. */
  readonly llm: ExecutionContext;
  /** BURSTABLE without a base: runs on spare memory. */
  readonly vision: ExecutionContext;
  /** BURSTABLE with a base reservation. */
  readonly tts: ExecutionContext;
  /** BEST_EFFORT: spare memory only, evicted first, the least urgent stream. */
  readonly background: ExecutionContext | undefined;
  /** Every context, in lane order. */
  readonly all: readonly ExecutionContext[];
  /** A sentence on the llm's partition; undefined when not partitioned. */
  readonly partitions: string | undefined;
}

/**
 * Creates the contexts (and the llm's partition, a quarter of the SMs).
 *
 * @throws {AdmissionError} when a reservation cannot be honoured
 */
export function createDemoContexts(
  options: { background: boolean; partitioned: boolean },
): DemoContexts {
  let partitions: string | undefined;
  if (options.partitioned) {
    const manager = new PartitionManager();
    const part = manager.createPartition("llm", "LLM", new PartitionLimits().compute(0.25));
    const how = part.enforced
      ? "enforced by a CUDA green context"
      : "accounted only on this backend";
    partitions = `llm has ${part.smCount} SMs of its own (${how}); ` +
      `the other contexts share the other ${manager.sharedSmCount}`;
  }
  const llm = createContext("llm", {
    maxVram: 64 * MB,
    qos: QoSPolicy.GUARANTEED,
    ...(options.partitioned ? { partition: "llm" } : {}),
  });
  const vision = createContext("vision", { maxVram: 64 * MB, qos: QoSPolicy.BURSTABLE });
  const tts = createContext("tts", {
    maxVram: 32 * MB,
    baseVram: 8 * MB,
    qos: QoSPolicy.BURSTABLE,
  });
  const background = options.background
    ? createContext("background", { maxVram: 128 * MB, qos: QoSPolicy.BEST_EFFORT })
    : undefined;
  const all = [llm, vision, tts, ...(background ? [background] : [])];
  return { llm, vision, tts, background, all, partitions };
}

/** "guaranteed, priority -5[, partition llm]". */
export function describe(ctx: ExecutionContext): string {
  const partition = ctx.partition ? `, partition ${ctx.partition}` : "";
  return `${ctx.qos}, priority ${ctx.stream.priority}${partition}`;
}
