/**
 * Command-line options of the multi-model demo.
 *
 * @module
 */
import type { BackendChoice } from "../_backend.ts";

/** What the demo runs, and where its files go. */
export interface DemoOptions {
  /** `"auto"` (CUDA when usable, else host), `"host"` or `"cuda"`. */
  backend: BackendChoice;
  /** Workload size: 1 is the default demo; tokens and images scale with it. */
  scale: number;
  /** Run a BEST_EFFORT background job that fills spare memory with evictable buffers. */
  background: boolean;
  /** Put the llm context in its own SM partition (a quarter of the SMs). */
  partitioned: boolean;
  /** Folder for timeline.json, timeline.svg and speech.wav. */
  out: string;
}

/** Defaults of every option. */
export const DEFAULT_OPTIONS: Readonly<DemoOptions> = Object.freeze({
  backend: "auto",
  scale: 1,
  background: false,
  partitioned: false,
  out: "out",
});

/** `--help` text. */
export const HELP = `Usage: deno task demo [-- OPTIONS]

Runs three model-shaped workloads on one GPU (or the host backend) under
gpusched: an LLM decoding token by token and a vision model classifying
generated images, concurrently, then a TTS stage that turns their combined
text into audio. Prints a report and writes a timeline of each context's
device activity.

Options:
  --backend host|cuda|auto  where the work runs (default auto: CUDA when a
                            device is usable, else the host backend)
  --scale N                 workload size, N > 0 (default 1): tokens and
                            images scale with N; 0.1 is a quick run
  --background              also run a BEST_EFFORT background job that fills
                            spare memory with evictable buffers, so that the
                            others evict it (default off)
  --partitioned             give the llm context its own SM partition (a
                            quarter of the SMs; enforced on CUDA, accounted
                            on the host backend)
  --out DIR                 where to write timeline.json (open it in
                            https://ui.perfetto.dev), timeline.svg and
                            speech.wav (default out; the demo task may
                            write only under out/)
  -h, --help                show this text`;

/**
 * Parses the command line (`--flag value` or `--flag=value`).
 *
 * @returns the options, or `"help"` when help was asked for
 * @throws {RangeError} for an unknown option or a bad value, saying which
 */
export function parseOptions(args: readonly string[]): DemoOptions | "help" {
  const options: DemoOptions = { ...DEFAULT_OPTIONS };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const next = args[++i];
      if (next === undefined) throw new RangeError(`Option ${name} needs a value`);
      return next;
    };
    switch (name) {
      case "--": // `deno task demo -- --flag` passes the separator on
        break;
      case "-h":
      case "--help":
        return "help";
      case "--backend": {
        const backend = value();
        if (backend !== "auto" && backend !== "cuda" && backend !== "host") {
          throw new RangeError(
            `--backend must be host, cuda or auto, got ${JSON.stringify(backend)}`,
          );
        }
        options.backend = backend;
        break;
      }
      case "--scale": {
        const text = value();
        const scale = Number(text);
        if (!Number.isFinite(scale) || scale <= 0 || scale > 100) {
          throw new RangeError(`--scale must be a number in (0, 100], got ${JSON.stringify(text)}`);
        }
        options.scale = scale;
        break;
      }
      case "--background":
        options.background = eq >= 0 ? onOff(name, arg.slice(eq + 1)) : true;
        break;
      case "--no-background":
        options.background = false;
        break;
      case "--partitioned":
        options.partitioned = eq >= 0 ? onOff(name, arg.slice(eq + 1)) : true;
        break;
      case "--out": {
        const out = value();
        if (out === "") throw new RangeError("--out must name a folder, got an empty string");
        options.out = out;
        break;
      }
      default:
        throw new RangeError(`Unknown option ${JSON.stringify(arg)}: see --help`);
    }
  }
  return options;
}

function onOff(name: string, value: string): boolean {
  if (value === "on" || value === "true") return true;
  if (value === "off" || value === "false") return false;
  throw new RangeError(`${name} must be on or off, got ${JSON.stringify(value)}`);
}
