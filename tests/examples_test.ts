/**
 * Every example runs, on every usable backend, and says what it should.
 * These are the guide's examples (API.md), so this is also the proof that
 * the public API behaves as documented.
 */
import assert from "node:assert/strict";
import { main as basicContexts } from "../examples/basic_contexts.ts";
import { main as memoryPool } from "../examples/memory_pool.ts";
import { main as qosEvaluator } from "../examples/qos_evaluator.ts";
import { main as sessions } from "../examples/sessions.ts";
import { main as streamsEvents } from "../examples/streams_events.ts";
import { main as vramBudgeting } from "../examples/vram_budgeting.ts";
import { BACKENDS } from "./_helpers.ts";

function exampleTest(
  name: string,
  run: (backend: "host" | "cuda") => string[] | Promise<string[]>,
  check: (lines: string[]) => void,
): void {
  for (const backend of BACKENDS) {
    Deno.test({
      name: `[${backend.name}] example ${name}${backend.skip ? ` (skipped: ${backend.skip})` : ""}`,
      ignore: backend.skip !== undefined,
      async fn() {
        check(await run(backend.name));
      },
    });
  }
}

exampleTest("basic_contexts.ts", basicContexts, (lines) => {
  assert.match(lines[0]!, /^llm +guaranteed +max 1024 MiB, reserved 1024 MiB, stream priority -5$/);
  assert.match(lines[2]!, /^background best_effort max 256 MiB, reserved 0 MiB/);
  assert.match(lines[3]!, /^vision +burstable +max 256 MiB, reserved 0 MiB/);
});

exampleTest("sessions.ts", sessions, (lines) => {
  assert.deepEqual(lines, [
    "sync scope: llm, buffer of llm",
    "after the scope: no context",
    "100 concurrent async sessions, all saw their own context: true",
  ]);
});

exampleTest("vram_budgeting.ts", vramBudgeting, (lines) => {
  assert.equal(lines[0], "pressure: background wants 16 MiB, 0 MiB available");
  assert.equal(lines[1], "first background buffer is now evicted");
  assert.equal(lines[2], "llm holds 120 MiB of its 128 MiB");
  assert.match(lines[3]!, /^past its budget: Context "llm" cannot allocate 16777216 bytes/);
  assert.match(lines[4]!, /^restored bit-exact: true/);
});

exampleTest("streams_events.ts", streamsEvents, (lines) => {
  assert.deepEqual(lines, [
    "event complete: true; consumer stream idle: true",
    "producer output starts 0.5, 0.5, 0.5, 0.5",
  ]);
});

exampleTest("memory_pool.ts", memoryPool, (lines) => {
  assert.equal(lines[0], "kv[0] evicted, kv[1] evicted, kv[2] resident");
  assert.equal(lines[1], "kv[0] restored: true");
  assert.match(lines[2]!, /^allocations 7, reused 1, evictions 3, restores 1/);
});

Deno.test("example qos_evaluator.ts", () => {
  const lines = qosEvaluator();
  assert.equal(lines[0], "LLM Inference: admit (priority -5)");
  assert.match(lines[1]!, /^Second LLM: reject/);
  assert.equal(lines[2], "TTS: admit (priority -3)");
  assert.match(lines[3]!, /^Batch embeddings: queue/);
  assert.equal(lines[4], "after releasing inference-1: 7.5 GiB unreserved");
});
