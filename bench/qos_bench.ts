/**
 * QoS admission costs: `evaluate()` for every class and decision, on an
 * evaluator already holding a few reservations (as a scheduler with live
 * contexts would), and an admit + release pair. Target: at least 5 million
 * `evaluate()` calls per second, i.e. under 200 ns each.
 *
 * Pure TypeScript, no device work: run with
 * `deno bench --allow-ffi --allow-env bench/qos_bench.ts` (or `deno task bench`).
 */
import { GB, MB, QosPolicyEvaluator, QosTaskMeta } from "../mod.ts";

const evaluator = new QosPolicyEvaluator({ totalMemory: 80 * GB, totalBandwidth: 1 });
evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 40 * GB, { bandwidth: 0.5 }));
evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 8 * GB, { base: 4 * GB, bandwidth: 0.25 }));
evaluator.admit(QosTaskMeta.bestEffort("bg", "Background", 2 * GB));
// Spare memory is now 36 GiB and the unreserved share 0.25.

const guaranteedFits = QosTaskMeta.guaranteed("g-fit", "Guaranteed", 256 * MB, {
  bandwidth: 0.125,
});
const guaranteedTooBig = QosTaskMeta.guaranteed("g-big", "Guaranteed", 64 * GB);
const burstableFits = QosTaskMeta.burstable("b-fit", "Burstable", 2 * GB, { base: 1 * GB });
const burstableThrottled = QosTaskMeta.burstable("b-burst", "Burstable", 48 * GB, {
  base: 1 * GB,
  priority: -2,
});
const bestEffortFits = QosTaskMeta.bestEffort("e-fit", "Best effort", 1 * GB);
const bestEffortQueued = QosTaskMeta.bestEffort("e-queue", "Best effort", 40 * GB);

// Reading a field of every result keeps the calls from being optimized away.
let sink = 0;

Deno.bench("evaluate: guaranteed, admit", { group: "evaluate", baseline: true }, () => {
  sink += evaluator.evaluate(guaranteedFits).priority;
});

Deno.bench("evaluate: guaranteed, reject", { group: "evaluate" }, () => {
  sink += evaluator.evaluate(guaranteedTooBig).priority;
});

Deno.bench("evaluate: burstable, admit", { group: "evaluate" }, () => {
  sink += evaluator.evaluate(burstableFits).priority;
});

Deno.bench("evaluate: burstable, throttle (priority hint)", { group: "evaluate" }, () => {
  sink += evaluator.evaluate(burstableThrottled).priority;
});

Deno.bench("evaluate: best-effort, admit", { group: "evaluate" }, () => {
  sink += evaluator.evaluate(bestEffortFits).priority;
});

Deno.bench("evaluate: best-effort, queue", { group: "evaluate" }, () => {
  sink += evaluator.evaluate(bestEffortQueued).priority;
});

Deno.bench("admit + release: guaranteed", { group: "admit+release", baseline: true }, () => {
  evaluator.admit(guaranteedFits);
  evaluator.release("g-fit");
});

Deno.bench("admit + release: burstable", { group: "admit+release" }, () => {
  evaluator.admit(burstableFits);
  evaluator.release("b-fit");
});

Deno.bench("admit + release: best-effort", { group: "admit+release" }, () => {
  evaluator.admit(bestEffortFits);
  evaluator.release("e-fit");
});

globalThis.addEventListener("unload", () => {
  if (Number.isNaN(sink)) console.log(sink);
});
