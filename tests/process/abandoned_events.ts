/**
 * Explicit events dropped without destroy() are destroyed by the
 * FinalizationRegistry backstop once collected. Needs --v8-flags=--expose-gc.
 * Exit 0 when the native event count came back down. Run by tests/process_test.ts.
 *
 * Usage: deno run --v8-flags=--expose-gc --allow-ffi tests/process/abandoned_events.ts [backend]
 */
import { initialize, shutdown } from "../../mod.ts";
import { nativeCounts } from "../../src/native/debug_counts.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const sched = initialize({ backend: Deno.args[0] === "cuda" ? "cuda" : "host" });
const stream = sched.createStream();
const before = nativeCounts().events;
(() => {
  for (let i = 0; i < 10_000; i++) sched.createEvent().record(stream);
})();
const made = nativeCounts().events - before;
if (made !== 10_000) throw new Error(`expected 10000 native events, counted ${made}`);
await stream.synchronize();
for (let i = 0; i < 20 && nativeCounts().events - before > 100; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 20)); // finalizers run between tasks
}
const left = nativeCounts().events - before;
console.log(`abandoned events left after collection: ${left} of 10000`);
shutdown();
if (left > 100) Deno.exit(2);
