/**
 * "tts": a formant synthesizer that stands in for a TTS model. It turns
 * text into a waveform a chunk of characters per kernel: each letter
 * becomes a pitched tone shaped by two formants (vowels get real vowel
 * formants) with an envelope, consonants add a burst of noise, anything
 * else is a pause. It buzzes; it does not speak. What it shows is the
 * scheduling: streamed device work under a budget, not speech.
 *
 * Device memory is one chunk's text and samples, reused for every chunk, so
 * the budget holds for any length of text; the samples of each chunk are
 * read back while the next one is synthesized.
 *
 * @module
 */
import { alloc, type ExecutionContext } from "../../mod.ts";
import { formatBytes } from "../../src/units.ts";
import type { DemoKernels } from "./kernels.ts";
import type { TimelineRecorder } from "./timeline.ts";

/** Sizes of the synthesis. */
export interface TtsConfig {
  /** Samples per second. */
  readonly sampleRate: number;
  /** Seconds of audio per character. */
  readonly secondsPerChar: number;
  /** Characters per kernel, and per device window. */
  readonly charsPerChunk: number;
}

/** The waveform and how long it took. */
export interface TtsResult {
  /** Samples in [-1, 1]. */
  readonly samples: Float32Array;
  readonly sampleRate: number;
  readonly chars: number;
  readonly chunks: number;
  /** Host milliseconds from the first text upload to the last samples read back. */
  readonly latencyMs: number;
  /** Device bytes it used (two windows of text and samples). */
  readonly bytes: number;
}

/** Device bytes `synthesize` allocates for `config`, whatever the text. */
export function ttsDeviceBytes(config: TtsConfig): number {
  const samplesPerChar = Math.round(config.sampleRate * config.secondsPerChar);
  return 2 * (Math.max(4, config.charsPerChunk) + config.charsPerChunk * samplesPerChar * 4);
}

/**
 * Synthesizes `text` (ASCII; other characters become pauses) on the
 * context's stream; call inside a session of the tts context.
 *
 * @throws {RangeError} when the text's samples do not fit in memory
 */
export async function synthesize(
  ctx: ExecutionContext,
  k: DemoKernels,
  text: string,
  config: TtsConfig,
  timeline: TimelineRecorder,
): Promise<TtsResult> {
  const started = performance.now();
  const chars = Uint8Array.from(text, (c) => (c.charCodeAt(0) < 128 ? c.charCodeAt(0) : 32));
  const samplesPerChar = Math.round(config.sampleRate * config.secondsPerChar);
  const total = chars.length * samplesPerChar;
  if (total * 4 > 2 ** 31) {
    throw new RangeError(
      `Cannot synthesize ${chars.length} characters: ${formatBytes(total * 4)} of samples ` +
        `is past the ${formatBytes(2 ** 31)} the demo keeps on the host`,
    );
  }
  const samples = new Float32Array(total);
  const window = config.charsPerChunk * samplesPerChar;
  // Two windows: chunk i+1 is synthesized while chunk i is read back.
  const windows = [0, 1].map(() => ({
    text: alloc(Math.max(4, config.charsPerChunk)),
    wave: alloc(window * 4),
    reading: Promise.resolve(),
  }));
  const count = Math.ceil(chars.length / config.charsPerChunk);
  try {
    for (let chunk = 0; chunk < count; chunk++) {
      const first = chunk * config.charsPerChunk;
      const n = Math.min(config.charsPerChunk, chars.length - first);
      const w = windows[chunk % 2]!;
      await w.reading; // its previous chunk is out of the window
      const upload = w.text.write(chars.subarray(first, first + n));
      timeline.record(ctx, `chunk ${chunk + 1}`, () => {
        k.synth(ctx.stream, w.wave, w.text, 0, n, samplesPerChar, config.sampleRate);
      }, { chars: n, text: text.slice(first, first + n) });
      const out = samples.subarray(first * samplesPerChar, (first + n) * samplesPerChar);
      w.reading = Promise.all([upload, w.wave.read(out)]).then(() => {});
    }
    await Promise.all(windows.map((w) => w.reading));
  } finally {
    for (const w of windows) {
      w.text.free();
      w.wave.free();
    }
  }
  return {
    samples,
    sampleRate: config.sampleRate,
    chars: chars.length,
    chunks: count,
    latencyMs: performance.now() - started,
    bytes: windows.reduce((sum, w) => sum + w.text.size + w.wave.size, 0),
  };
}
