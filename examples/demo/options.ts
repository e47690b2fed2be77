/**
 * Command-line options of the multi-model demo.
 *
 * @module
 */
import { parseArgs } from "node:util";
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
generated images, concurrently, then a formant synthesizer standing in for a
TTS model turns their combined text into audio (it buzzes; it does not
speak). All weights are random: nothing is trained or downloaded. Prints a
report and writes a timeline of each context's device activity.

Options:
  --backend host|cuda|auto  where the work runs (default auto: CUDA when a
                            device is usable, else the host backend)
  --scale N                 workload size, 0 < N <= 100 (default 1): tokens,
                            images and audio scale with N; 0.1 is a quick
                            run; 100 took about 2 minutes on a loaded
                            2-core host (with --background)
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

const SPEC = {
  backend: { type: "string" },
  scale: { type: "string" },
  background: { type: "boolean" },
  "no-background": { type: "boolean" },
  partitioned: { type: "boolean" },
  out: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses the command line (`--flag value` or `--flag=value`; `--background`
 * and `--partitioned` also take `=on|off`) with node:util's parseArgs, then
 * checks each value.
 *
 * @returns the options, or `"help"` when help was asked for
 * @throws {RangeError} for an unknown option or a bad value, saying which
 */
export function parseOptions(args: readonly string[]): DemoOptions | "help" {
  const options: DemoOptions = { ...DEFAULT_OPTIONS };
  // `deno task demo -- --flag` passes the separator on; parseArgs would take
  // everything after it as positionals.
  const { tokens } = parseArgs({
    args: args.filter((a) => a !== "--"),
    options: SPEC,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === "positional") {
      throw new RangeError(`Unknown argument ${JSON.stringify(token.value)}: see --help`);
    }
    if (token.kind !== "option") continue;
    const { name, rawName, value } = token;
    if (!Object.hasOwn(SPEC, name)) {
      throw new RangeError(`Unknown option ${JSON.stringify(rawName)}: see --help`);
    }
    const text = (): string => {
      if (value === undefined) throw new RangeError(`Option ${rawName} needs a value`);
      return value;
    };
    switch (name as keyof typeof SPEC) {
      case "help":
        return "help";
      case "backend": {
        const backend = text();
        if (backend !== "auto" && backend !== "cuda" && backend !== "host") {
          throw new RangeError(
            `--backend must be host, cuda or auto, got ${JSON.stringify(backend)}`,
          );
        }
        options.backend = backend;
        break;
      }
      case "scale": {
        const raw = text();
        const scale = Number(raw);
        if (raw.trim() === "" || !Number.isFinite(scale) || scale <= 0 || scale > 100) {
          throw new RangeError(`--scale must be a number in (0, 100], got ${JSON.stringify(raw)}`);
        }
        options.scale = scale;
        break;
      }
      case "background":
        options.background = value === undefined ? true : onOff(rawName, value);
        break;
      case "no-background":
        options.background = false;
        break;
      case "partitioned":
        options.partitioned = value === undefined ? true : onOff(rawName, value);
        break;
      case "out": {
        const out = text();
        if (out === "") throw new RangeError("--out must name a folder, got an empty string");
        options.out = out;
        break;
      }
    }
  }
  return options;
}

function onOff(name: string, value: string): boolean {
  if (value === "on" || value === "true") return true;
  if (value === "off" || value === "false") return false;
  throw new RangeError(`${name} must be on or off, got ${JSON.stringify(value)}`);
}
