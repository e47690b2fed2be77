/**
 * The QoS admission evaluator (API.md "Low-level engine"): pure decisions,
 * reservations, and priorities on the device's real stream range.
 *
 * Run: deno run examples/qos_evaluator.ts
 */
import { GB, MB, QosPolicyEvaluator, QosTaskMeta } from "../mod.ts";

/** Runs the example; returns what it printed, for tests. */
export function main(): string[] {
  const lines: string[] = [];
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GB, totalBandwidth: 1.0 });
  const tasks = [
    QosTaskMeta.guaranteed("inference-1", "LLM Inference", 6 * GB, { bandwidth: 0.5 }),
    QosTaskMeta.guaranteed("inference-2", "Second LLM", 4 * GB),
    QosTaskMeta.burstable("tts-1", "TTS", 2 * GB, { base: 512 * MB }),
    QosTaskMeta.bestEffort("batch-1", "Batch embeddings", 4 * GB),
  ];
  for (const task of tasks) {
    const r = evaluator.evaluate(task); // pure: reserves nothing
    lines.push(
      `${task.name}: ${r.decision} (priority ${r.priority})${r.admitted ? "" : `: ${r.reason}`}`,
    );
    if (r.admitted) evaluator.admit(task);
  }
  evaluator.release("inference-1");
  lines.push(`after releasing inference-1: ${evaluator.availableMemory / GB} GiB unreserved`);
  return lines;
}

if (import.meta.main) console.log(main().join("\n"));
