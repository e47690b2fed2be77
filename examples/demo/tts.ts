/**
 * "tts": turns text into a waveform, a chunk of characters per group of
 * kernels. Each letter becomes a pitched tone shaped by two formants
 * (vowels get real vowel formants) with an envelope, consonants add a burst
 * of noise, anything else is a pause. Not speech, but real audio.
 *
 * @module
 */
import { alloc, type DeviceBuffer, type ExecutionContext } from "../../mod.ts";
import type { DemoKernels } from "./kernels.ts";
import type { TimelineRecorder } from "./timeline.ts";

/** Sizes of the synthesis. */
export interface TtsConfig {
  /** Samples per second. */
  readonly sampleRate: number;
  /** Seconds of audio per character. */
  readonly secondsPerChar: number;
  /** Characters per group of kernels. */
  readonly charsPerChunk: number;
}

/** The waveform and how long it took. */
export interface TtsResult {
  /** Samples in [-1, 1]. */
  readonly samples: Float32Array;
  readonly sampleRate: number;
  readonly chars: number;
  readonly chunks: number;
  /** Host milliseconds from the text upload to the samples read back. */
  readonly latencyMs: number;
  /** Device bytes it used (text and samples). */
  readonly bytes: number;
}

/**
 * Synthesizes `text` (ASCII; other characters become pauses) on the
 * context's stream; call inside a session of the tts context.
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
  const textBuf: DeviceBuffer = alloc(Math.max(4, chars.length));
  const wave: DeviceBuffer = alloc(Math.max(4, total * 4));
  await textBuf.write(chars);
  let chunks = 0;
  for (let first = 0; first < chars.length; first += config.charsPerChunk) {
    const n = Math.min(config.charsPerChunk, chars.length - first);
    timeline.record(ctx, `chunk ${++chunks}`, () => {
      k.synth(ctx.stream, wave, textBuf, first, n, samplesPerChar, config.sampleRate);
    }, { chars: n, text: text.slice(first, first + n) });
  }
  const samples = new Float32Array(total);
  await wave.read(samples);
  return {
    samples,
    sampleRate: config.sampleRate,
    chars: chars.length,
    chunks,
    latencyMs: performance.now() - started,
    bytes: textBuf.size + wave.size,
  };
}
