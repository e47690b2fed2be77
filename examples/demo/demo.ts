/**
 * The multi-model demo from start to end: the contexts; llm and vision run
 * concurrently, each in its own async session; tts speaks their combined
 * result; a background job and an SM partition on request; then the files
 * and the report.
 *
 * @module
 */
import {
  contextSession,
  getAvailableVram,
  getContextUsage,
  initialize,
  onMemoryPressure,
  type Scheduler,
  shutdown,
} from "../../mod.ts";
import { BackgroundJob, type BackgroundResult } from "./background.ts";
import { createDemoContexts, describe, MEMORY_LIMIT } from "./contexts.ts";
import { writeDemoFiles } from "./files.ts";
import { DemoKernels } from "./kernels.ts";
import { type LlmConfig, TinyLlm } from "./llm.ts";
import type { DemoOptions } from "./options.ts";
import { formatReport, mib, ms, type StageRow } from "./report.ts";
import { describeSleepWake, sleepAndWake } from "./sleep_phase.ts";
import { busyMs, overlapMs, TimelineRecorder } from "./timeline.ts";
import { synthesize, type TtsConfig } from "./tts.ts";
import { LABELS, TinyVision, type VisionConfig } from "./vision.ts";

const TTS: TtsConfig = { sampleRate: 22050, secondsPerChar: 0.07, charsPerChunk: 24 };
const BACKGROUND_BUFFER = 8 * 1024 * 1024;
const BACKGROUND_BUFFERS = 16;

/**
 * Runs the demo.
 *
 * @param progress receives a line as each stage starts or ends
 * @returns the report's lines
 * @throws {SchedulerError} when the backend cannot start (no usable CUDA device for "cuda")
 * @throws {Error} when the output files cannot be written, saying which permission is missing
 */
export async function runDemo(
  options: DemoOptions,
  progress: (line: string) => void,
): Promise<string[]> {
  const started = performance.now();
  const say = (line: string) =>
    progress(`[${((performance.now() - started) / 1000).toFixed(2).padStart(6)} s] ${line}`);
  const sched = initialize({ backend: options.backend, memoryLimit: MEMORY_LIMIT });
  try {
    return await run(sched, options, say, started);
  } finally {
    shutdown();
  }
}

async function run(
  sched: Scheduler,
  options: DemoOptions,
  say: (line: string) => void,
  started: number,
): Promise<string[]> {
  const kernels = new DemoKernels(sched.backend);
  say(`${sched.backend} backend on ${sched.device.name}; ${mib(MEMORY_LIMIT)} of memory managed`);
  const contexts = createDemoContexts(options);
  const { llm, vision, tts, background } = contexts;
  if (contexts.partitions) say(`partitions: ${contexts.partitions}`);
  say(`contexts: ${contexts.all.map((c) => `${c.name} (${describe(c)})`).join(", ")}`);
  const timeline = new TimelineRecorder(sched, llm);
  for (const ctx of contexts.all) timeline.addLane(ctx, describe(ctx));

  const pressure = new Map<string, number>();
  const offPressure = onMemoryPressure((ctx) => {
    pressure.set(ctx.name, (pressure.get(ctx.name) ?? 0) + 1);
    return true; // let the scheduler evict what it may
  });

  const stop = { stopped: false };
  let backgroundRun: Promise<BackgroundResult> | undefined;
  if (background) {
    const job = await contextSession(
      background,
      (ctx) => BackgroundJob.start(ctx, kernels, timeline, BACKGROUND_BUFFER, BACKGROUND_BUFFERS),
    );
    const held = mib(job.buffers.length * BACKGROUND_BUFFER);
    say(`background: ${job.buffers.length} evictable buffers (${held}) fill the spare memory`);
    backgroundRun = contextSession(background, () => job.run(timeline, stop));
  }

  const llmConfig: LlmConfig = {
    dim: 512,
    layers: 6,
    tokens: Math.max(4, Math.round(24 * options.scale)),
    prompt: "the",
    seed: 1,
  };
  const visionConfig: VisionConfig = {
    images: Math.max(8, Math.round(48 * options.scale)),
    batch: 8,
    side: 64,
    seed: 2,
  };
  say(
    `llm + vision: loading random weights, then decoding ${llmConfig.tokens} tokens and ` +
      `classifying ${visionConfig.images} images concurrently`,
  );
  const concurrentStart = performance.now();
  const [decoded, classified] = await Promise.all([
    contextSession(llm, async (ctx) => {
      const model = await TinyLlm.load(ctx, kernels, llmConfig, timeline);
      const result = await model.generate(timeline);
      say(`llm: ${result.tokens.length - 1} tokens in ${ms(result.latencyMs)}: "${result.text}"`);
      return { ...result, weightBytes: model.weightBytes };
    }),
    contextSession(vision, async (ctx) => {
      const model = await TinyVision.load(ctx, kernels, visionConfig, timeline);
      const result = await model.classify(timeline);
      say(`vision: ${result.labels.length} images in ${ms(result.latencyMs)}`);
      return result;
    }),
  ]);
  const concurrentMs = performance.now() - concurrentStart;

  const seen = countLabels(classified.labels);
  const spoken = `${decoded.text}. i see ${listWords(seen.slice(0, 3).map(([l]) => plural(l)))}.`;
  say(`tts: speaking ${spoken.length} characters`);
  const speech = await contextSession(
    tts,
    (ctx) => synthesize(ctx, kernels, spoken, TTS, timeline),
  );
  const seconds = speech.samples.length / speech.sampleRate;
  say(`tts: ${seconds.toFixed(1)} s of audio in ${ms(speech.latencyMs)}`);

  stop.stopped = true;
  const backgroundResult = await backgroundRun;
  const swapped = describeSleepWake(await sleepAndWake(llm));
  say(`sleep/wake: ${swapped}`);
  offPressure();
  const wallMs = performance.now() - started;
  const rows = contexts.all.map((ctx) => ({
    name: ctx.name,
    qos: ctx.qos,
    priority: ctx.stream.priority,
    usage: getContextUsage(ctx),
    evictions: ctx === background ? backgroundResult?.evictions ?? 0 : 0,
  }));
  const availableAtEnd = getAvailableVram();
  const data = await timeline.finish(
    `gpusched demo: ${contexts.all.map((c) => c.name).join(", ")} on ${sched.device.name}`,
  );
  const files = await writeDemoFiles(options.out, {
    timeline: data,
    subtitle: `${sched.backend} backend, ${mib(MEMORY_LIMIT)} managed` +
      `${contexts.partitions ? ", llm in its own SM partition" : ""}; wall time ${ms(wallMs)}`,
    samples: speech.samples,
    sampleRate: speech.sampleRate,
  });
  say(`wrote ${files.length} files to ${options.out}`);

  // Stage figures count the stage's own spans, not loading and calibration.
  const steps = [...decoded.stepMs].sort((a, b) => a - b);
  const stages: StageRow[] = [
    {
      name: "llm",
      work: `${decoded.tokens.length - 1} tokens, ${llmConfig.layers} layers x ${llmConfig.dim}, ` +
        `${mib(decoded.weightBytes)} of weights`,
      busyMs: busyMs(data, "llm", (s) => s.name.startsWith("token ")),
      latencyMs: decoded.latencyMs,
      note: `(per token: p50 ${ms(quantile(steps, 0.5))}, p95 ${ms(quantile(steps, 0.95))})`,
    },
    {
      name: "vision",
      work: `${classified.labels.length} images ${visionConfig.side}x${visionConfig.side}, ` +
        `${classified.batches} batches, 2 convs + classifier`,
      busyMs: busyMs(data, "vision", (s) => s.name.startsWith("batch ")),
      latencyMs: classified.latencyMs,
    },
    {
      name: "tts",
      work: `${speech.chars} chars in ${speech.chunks} chunks -> ${seconds.toFixed(1)} s of audio`,
      busyMs: busyMs(data, "tts"),
      latencyMs: speech.latencyMs,
    },
  ];
  if (backgroundResult) {
    stages.push({
      name: "background",
      work: `${backgroundResult.refreshes} refreshes of ${backgroundResult.buffers} buffers`,
      busyMs: busyMs(data, "background", (s) => s.name.startsWith("refresh ")),
      latencyMs: backgroundResult.runMs,
      note: "(ran until tts was done)",
    });
  }
  return formatReport({
    backend: sched.backend,
    device: sched.device,
    memoryLimit: MEMORY_LIMIT,
    availableAtEnd,
    partitions: contexts.partitions,
    contexts: rows,
    stages,
    concurrentMs,
    overlapMs: overlapMs(data, "llm", "vision"),
    pressure,
    wallMs,
    sleepWake: swapped,
    text: decoded.text,
    seen: `${classified.labels.length} images: ${seen.map(([l, n]) => `${l} x${n}`).join(", ")}`,
    files,
  });
}

/** Label names with their counts, most frequent first. */
function countLabels(labels: readonly number[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const id of labels) counts.set(LABELS[id]!, (counts.get(LABELS[id]!) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function plural(word: string): string {
  return word === "fish" ? word : `${word}s`;
}

/** "a", "a and b", "a, b and c". */
function listWords(words: readonly string[]): string {
  return words.length <= 1
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} and ${words[words.length - 1]}`;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}
