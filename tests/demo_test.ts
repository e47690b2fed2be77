/** The demo's papercuts: bounded tts memory, --out checked first, labels that fit, progress. */
import assert from "node:assert/strict";
import { contextSession, createContext, getContextUsage, MB, QoSPolicy } from "../mod.ts";
import { main as multiModel } from "../examples/multi_model.ts";
import { DemoKernels } from "../examples/demo/kernels.ts";
import { parseOptions } from "../examples/demo/options.ts";
import { ProgressRecorder } from "../examples/demo/progress.ts";
import { timelineSvg } from "../examples/demo/svg.ts";
import type { Timeline } from "../examples/demo/timeline.ts";
import { synthesize, ttsDeviceBytes } from "../examples/demo/tts.ts";
import { backendTest } from "./_helpers.ts";

backendTest("tts synthesizes a text whose samples are far past its budget", async (sched) => {
  const config = { sampleRate: 8000, secondsPerChar: 0.07, charsPerChunk: 24 };
  const text = "the quick brown fox jumps over the lazy dog. ".repeat(23); // 1035 chars
  const samplesBytes = text.length * Math.round(8000 * 0.07) * 4;
  const tts = createContext("tts", { maxVram: 1 * MB, qos: QoSPolicy.BURSTABLE });
  assert.ok(samplesBytes > 2 * MB, `${samplesBytes} bytes of samples`);
  const timeline = new ProgressRecorder(sched, tts, () => {});
  const speech = await contextSession(
    tts,
    (ctx) => synthesize(ctx, new DemoKernels(sched.backend), text, config, timeline),
  );
  await timeline.finish("tts");
  assert.equal(speech.samples.length, samplesBytes / 4);
  assert.equal(speech.chunks, Math.ceil(text.length / 24));
  assert.ok(getContextUsage(tts).peak <= 1 * MB);
  assert.ok(speech.bytes <= ttsDeviceBytes(config));
  // Every chunk came back: no window of silence where a letter was.
  const perChar = Math.round(8000 * 0.07);
  for (let c = 0; c < text.length; c++) {
    if (!/[a-z]/.test(text[c]!)) continue;
    const slice = speech.samples.subarray(c * perChar, (c + 1) * perChar);
    assert.ok(slice.some((v) => Math.abs(v) > 0.01), `character ${c} (${text[c]}) is audible`);
  }
});

backendTest(
  "the progress recorder reports the spans it expects, at most once per interval",
  async (sched) => {
    const llm = createContext("llm", { maxVram: 4 * MB });
    const lines: string[] = [];
    let now = 0;
    const timeline = new ProgressRecorder(sched, llm, (l) => lines.push(l), 10, () => now);
    timeline.expect(llm, "token", 4, "token");
    for (let i = 1; i <= 4; i++) {
      now += i === 2 ? 5 : 10; // the second token comes too soon after the first line
      timeline.record(llm, `token ${i}`, () => {});
    }
    timeline.record(llm, "load weights", () => {});
    await timeline.finish("t");
    // Token 4 is the last: the stage's own line says it is done.
    assert.deepEqual(lines, ["llm: token 1 of 4 (25%)", "llm: token 3 of 4 (75%)"]);
  },
);

Deno.test("the demo checks its --out permission before any work", async () => {
  const progress: string[] = [];
  await assert.rejects(
    multiModel("host", {
      scale: 0.1,
      out: "/gpusched-not-allowed",
      progress: (l) => progress.push(l),
    }),
    /Cannot write the demo's files to \/gpusched-not-allowed: run with --allow-write=\/gpusched-not-allowed/,
  );
  assert.deepEqual(progress, []);
});

Deno.test("the timeline SVG keeps every lane label inside the label column", () => {
  const detail = "guaranteed, priority -5, partition llm-with-a-rather-long-partition-name";
  const svg = timelineSvg({
    title: "t",
    lanes: [{ id: "llm", detail }, { id: "a-context-with-a-very-long-name-indeed", detail: "x" }],
    spans: [
      { lane: "llm", name: "token 1", startMs: 0, durationMs: 123_456_789, args: {} },
    ],
    trace: {} as Timeline["trace"], // the SVG draws the spans only
  }, "sub");
  const column = Number(svg.match(/<rect x="(\d+)" y="64" width="\d+" height="44"/)![1]);
  for (const [, attrs, text] of svg.matchAll(/<text x="16" y="\d+"([^>]*)>([^<]*)<\/text>/g)) {
    if (text!.startsWith("t") && attrs!.includes('font-size="16"')) continue; // title
    const squeezed = attrs!.match(/textLength="([\d.]+)"/);
    const charWidth = attrs!.includes('font-size="11"') ? 6.4 : 7.6;
    const width = squeezed ? Number(squeezed[1]) : text!.length * charWidth;
    if (text === "sub") continue;
    assert.ok(16 + width <= column, `"${text}" (${width}px) fits left of ${column}`);
  }
  assert.match(svg, /busy 34\.29 h|busy 123456\.79 s/);
});

Deno.test("the demo's --scale takes its whole documented range", () => {
  for (const scale of ["0.01", "35", "100"]) {
    const options = parseOptions(["--scale", scale]);
    assert.ok(options !== "help" && options.scale === Number(scale));
  }
  for (const bad of ["", "0", "-1", "100.5", "NaN", "1e3"]) {
    assert.throws(() => parseOptions([`--scale=${bad}`]), /--scale must be a number in \(0, 100\]/);
  }
  assert.throws(() => parseOptions(["stray"]), /Unknown argument "stray"/);
});
