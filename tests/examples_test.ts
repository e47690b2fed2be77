/**
 * Every example runs, on every usable backend, and says what it should.
 * These are the guide's examples (API.md), so this is also the proof that
 * the public API behaves as documented.
 */
import assert from "node:assert/strict";
import { main as basicContexts } from "../examples/basic_contexts.ts";
import { main as memoryPool } from "../examples/memory_pool.ts";
import { main as modelSwap } from "../examples/model_swap.ts";
import { main as multiDevice } from "../examples/multi_device.ts";
import { main as multiModel } from "../examples/multi_model.ts";
import { main as ownKernel } from "../examples/own_kernel.ts";
import { parseOptions } from "../examples/demo/options.ts";
import { main as qosEvaluator } from "../examples/qos_evaluator.ts";
import { main as sessions } from "../examples/sessions.ts";
import { main as streamsEvents } from "../examples/streams_events.ts";
import { main as vramBudgeting } from "../examples/vram_budgeting.ts";
import { main as metricsServer } from "../examples/metrics_server.ts";
import type { ChromeTrace } from "../mod.ts";
import { assertValidChromeTrace, trackId } from "./_chrome_trace.ts";
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

exampleTest("multi_device.ts", multiDevice, (lines) => {
  const two = lines[0] === "2 device(s); default device 0";
  assert.match(lines[0]!, /^\d+ device\(s\); default device 0$/);
  if (two) {
    assert.equal(lines[1], "vision on 0, llm on 1, tts (auto) on 0");
    assert.equal(lines[2], "available: device 0 1664 MiB, device 1 1280 MiB");
  } else {
    assert.equal(lines[1], "vision on 0, llm on 0, tts (auto) on 0");
  }
  assert.equal(lines[3], "llm input starts 0.25, 0.25, 0.25, 0.25");
});

exampleTest("model_swap.ts", modelSwap, (lines) => {
  assert.equal(lines[0], "3 models of 48 MiB, 128 MiB of device memory: one awake at a time");
  assert.equal(lines.length, 8);
  for (const line of lines.slice(1, 7)) {
    assert.match(line, /^round [12]: \w+ served, weights intact at the same addresses: true$/);
  }
  assert.equal(lines[7], "every wake restored its weights bit-exact at the same addresses: true");
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

exampleTest("own_kernel.ts", ownKernel, (lines) => {
  assert.match(lines[0]!, /^launched gs_fill_u32 on (host|cuda), stream \d+$/);
  assert.equal(lines[1], "read back 1048576 values: all correct");
  assert.equal(lines[2], "first values 1000, 1001, 1002, 1003");
});

exampleTest(
  "metrics_server.ts",
  (backend) => metricsServer(backend, ["--port", "0", "--once"]),
  (lines) => {
    assert.match(lines[0]!, /^serving http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.equal(
      lines[1],
      "scraped 200 text/plain; version=0.0.4; charset=utf-8: 13 families, 24 samples",
    );
    assert.deepEqual(lines.slice(2), [
      'gpusched_context_used_bytes{context="llm",qos="guaranteed",device="0"} 201326592',
      'gpusched_context_used_bytes{context="vision",qos="burstable",device="0"} 0',
      'gpusched_context_allocation_failures_total{context="llm",qos="guaranteed",device="0"} 0',
      'gpusched_context_allocation_failures_total{context="vision",qos="burstable",device="0"} 1',
    ]);
  },
);

/** The device spans on a context's "(device)" track of the demo's trace. */
function deviceSpans(trace: ChromeTrace, lane: string) {
  const tid = trackId(trace, `${lane} (device)`);
  return trace.traceEvents.filter((e) => e.ph === "X" && e.tid === tid);
}

/** Runs the demo small, into out/test/<backend>[-background]; returns report, progress and files. */
async function runDemo(backend: "host" | "cuda", background: boolean) {
  const out = `out/test/${backend}${background ? "-background" : ""}`;
  const progress: string[] = [];
  const report = await multiModel(backend, {
    scale: 0.1,
    background,
    out,
    progress: (line) => progress.push(line),
  });
  const read = (name: string) => Deno.readFile(`${out}/${name}`);
  return {
    report,
    progress,
    trace: JSON.parse(new TextDecoder().decode(await read("timeline.json"))) as ChromeTrace,
    svg: new TextDecoder().decode(await read("timeline.svg")),
    wav: await read("speech.wav"),
    out,
  };
}

function row(report: string[], name: string): string[] {
  const line = report.find((l) => l.startsWith(`${name} `));
  assert.ok(line, `a report row for ${name}`);
  return line.trim().split(/ {2,}/);
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `[${backend.name}] example multi_model.ts runs llm and vision concurrently, then tts, ` +
      `and writes the trace, the SVG and the audio${
        backend.skip ? ` (skipped: ${backend.skip})` : ""
      }`,
    ignore: backend.skip !== undefined,
    async fn() {
      const { report, progress, trace, svg, wav, out } = await runDemo(backend.name, false);
      for (const stage of ["llm + vision:", "llm:", "vision:", "tts:", "wrote 3 files"]) {
        assert.ok(progress.some((l) => l.includes(stage)), `progress line for ${stage}`);
      }
      assert.ok(report.includes(`backend     ${backend.name}`));
      assert.ok(
        report.some((l) => /^sleep\/wake {2}llm slept .* every buffer at its address$/.test(l)),
        "the report shows the sleep phase",
      );
      assert.deepEqual(row(report, "llm").slice(0, 5), [
        "llm",
        "guaranteed",
        "-5",
        "64 MiB",
        "64 MiB",
      ]);
      assert.deepEqual(row(report, "tts").slice(1, 5), ["burstable", "-3", "32 MiB", "8.0 MiB"]);
      assert.match(report.find((l) => l.startsWith("llm said"))!, /^llm said {4}"the( \w+){4}"$/);
      assert.ok(report.some((l) => l.includes(`${out}/speech.wav`)));

      // The trace: the library's (a track per context, memory counters) plus a device track each.
      const events = assertValidChromeTrace(trace);
      const names = trace.traceEvents.filter((e) => e.name === "thread_name")
        .map((e) => e.args!["name"] as string);
      assert.deepEqual(names.filter((n) => n.endsWith(" (device)")), [
        "llm (device)",
        "vision (device)",
        "tts (device)",
      ]);
      for (const lane of ["llm", "vision", "tts"]) {
        assert.ok(deviceSpans(trace, lane).length > 0, `device spans of ${lane}`);
        const tid = trackId(trace, lane);
        assert.ok(events.some((e) => e.name === "alloc" && e.tid === tid), `${lane} allocations`);
        assert.ok(events.some((e) => e.ph === "C" && e.name === `${lane} memory`));
      }
      assert.equal(deviceSpans(trace, "llm").length, 1 + 4); // load + tokens

      assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      for (const lane of ["llm", "vision", "tts"]) assert.ok(svg.includes(`>${lane}</text>`));

      // A playable WAV: RIFF header, PCM, mono, 16-bit, sizes that add up.
      const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
      const ascii = (at: number) => new TextDecoder().decode(wav.subarray(at, at + 4));
      assert.deepEqual([ascii(0), ascii(8), ascii(12), ascii(36)], [
        "RIFF",
        "WAVE",
        "fmt ",
        "data",
      ]);
      assert.equal(view.getUint32(4, true), wav.byteLength - 8);
      assert.deepEqual(
        [view.getUint16(20, true), view.getUint16(22, true), view.getUint16(34, true)],
        [1, 1, 16],
      );
      assert.equal(view.getUint32(40, true), wav.byteLength - 44);
      let loudest = 0;
      for (let i = 44; i < wav.byteLength; i += 2) {
        loudest = Math.max(loudest, Math.abs(view.getInt16(i, true)));
      }
      assert.ok(loudest > 3000, `audible, peak ${loudest}`);
    },
  });

  Deno.test({
    name: `[${backend.name}] example multi_model.ts --background: the best-effort job's ` +
      `buffers are evicted for the others${backend.skip ? ` (skipped: ${backend.skip})` : ""}`,
    ignore: backend.skip !== undefined,
    async fn() {
      const { report, trace } = await runDemo(backend.name, true);
      const background = row(report, "background");
      assert.deepEqual(background.slice(1, 5), ["best_effort", "0", "128 MiB", "0 MiB"]);
      assert.ok(Number(background[7]) >= 1, `evictions: ${background[7]}`);
      assert.match(report.find((l) => l.startsWith("memory pressure"))!, /vision x\d+/);
      assertValidChromeTrace(trace);
      assert.ok(deviceSpans(trace, "background").length > 0);
      const evictions = trace.traceEvents.filter((e) => e.name === "evict");
      assert.ok(evictions.some((e) => e.tid === trackId(trace, "background")));
    },
  });
}

Deno.test("example multi_model.ts reads its options from the command line", () => {
  assert.deepEqual(parseOptions([]), {
    backend: "auto",
    scale: 1,
    background: false,
    partitioned: false,
    out: "out",
  });
  assert.deepEqual(
    parseOptions([
      "--",
      "--backend",
      "host",
      "--scale=0.5",
      "--background",
      "--partitioned",
      "--out",
      "o",
    ]),
    { backend: "host", scale: 0.5, background: true, partitioned: true, out: "o" },
  );
  const off = parseOptions(["--background", "--background=off"]);
  assert.ok(off !== "help" && off.background === false);
  assert.equal(parseOptions(["--scale", "2", "-h"]), "help");
  assert.throws(
    () => parseOptions(["--backend", "tpu"]),
    /--backend must be host, cuda or auto, got "tpu"/,
  );
  assert.throws(
    () => parseOptions(["--scale", "0"]),
    /--scale must be a number in \(0, 100\], got "0"/,
  );
  assert.throws(() => parseOptions(["--out"]), /Option --out needs a value/);
  assert.throws(() => parseOptions(["--fast"]), /Unknown option "--fast"/);
});
