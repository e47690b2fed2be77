/**
 * What tracing costs on the hot path: alloc + free of a cached size
 * through a context with no trace recording (one boolean check per hook)
 * and while `startTrace()` records (an instant and a counter event per
 * alloc and per free into the ring buffer).
 *
 * Run: deno bench --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND bench/trace_bench.ts
 */
import { createContext, isTracing, MB, QoSPolicy, startTrace, stopTrace } from "../mod.ts";
import { benchScheduler } from "./_backend.ts";

benchScheduler();
const llm = createContext("bench-llm", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
llm.alloc(64 * 1024).free(); // warm the size class

// Both bodies pay the same isTracing() check; the ring (100,000 events) fills
// within the warm-up, so "on" measures a long recording's steady state.
Deno.bench("ctx.alloc + free, cached 64 KiB, tracing off", {
  group: "trace",
  baseline: true,
}, () => {
  if (isTracing()) stopTrace();
  llm.alloc(64 * 1024).free();
});

Deno.bench("ctx.alloc + free, cached 64 KiB, tracing on", { group: "trace" }, () => {
  if (!isTracing()) startTrace({ capacity: 100_000 });
  llm.alloc(64 * 1024).free();
});
