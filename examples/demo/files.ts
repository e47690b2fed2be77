/**
 * Writing the demo's output files.
 *
 * @module
 */
import { timelineSvg } from "./svg.ts";
import type { Timeline } from "./timeline.ts";
import { chromeTrace } from "./trace.ts";
import { encodeWav } from "./wav.ts";

/** What goes into the files. */
export interface DemoOutput {
  readonly timeline: Timeline;
  /** The SVG's line under its title. */
  readonly subtitle: string;
  readonly samples: Float32Array;
  readonly sampleRate: number;
}

/**
 * Throws unless `dir` may be written, so that a run does not end in a
 * permission error after all its work.
 *
 * @throws {Error} without write permission for `dir`, saying which flag grants it
 */
export function requireWritable(dir: string): void {
  const base = dir.replace(/\/+$/, "") || "/";
  if (Deno.permissions.querySync({ name: "write", path: base }).state !== "granted") {
    throw new Error(
      `Cannot write the demo's files to ${base}: run with --allow-write=${base} ` +
        `(the demo task allows only out/)`,
    );
  }
}

/**
 * Writes `timeline.json`, `timeline.svg` and `speech.wav` into `dir`,
 * creating it.
 *
 * @returns a line per file: its path and how to look at it
 * @throws {Error} without write permission for `dir`, saying which flag grants it
 */
export async function writeDemoFiles(dir: string, output: DemoOutput): Promise<string[]> {
  const base = dir.replace(/\/+$/, "") || "/";
  const path = (name: string) => (base.endsWith("/") ? base + name : `${base}/${name}`);
  try {
    await Deno.mkdir(base, { recursive: true });
    await Deno.writeTextFile(path("timeline.json"), JSON.stringify(chromeTrace(output.timeline)));
    await Deno.writeTextFile(path("timeline.svg"), timelineSvg(output.timeline, output.subtitle));
    await Deno.writeFile(path("speech.wav"), encodeWav(output.samples, output.sampleRate));
  } catch (cause) {
    if (cause instanceof Deno.errors.NotCapable) {
      throw new Error(
        `Cannot write the demo's files to ${base}: run with --allow-write=${base} ` +
          `(the demo task allows only out/)`,
        { cause },
      );
    }
    throw cause;
  }
  const seconds = (output.samples.length / output.sampleRate).toFixed(1);
  return [
    `${
      path("timeline.json")
    }  Chrome trace: open it in https://ui.perfetto.dev (or chrome://tracing)`,
    `${path("timeline.svg")}  the same timeline as a picture: open it in a browser`,
    `${path("speech.wav")}  the synthesizer's rendering of the text: a buzz, not speech ` +
    `(${seconds} s, 16-bit PCM mono)`,
  ];
}
