/**
 * The multi-model demo: an LLM decoding token by token and a vision model
 * classifying images run concurrently on one GPU (or the host backend),
 * each in its own execution context with a VRAM budget and a QoS class;
 * then a formant synthesizer standing in for a TTS model turns their
 * combined result into a .wav file (it buzzes; it does not speak). It prints
 * a report and writes a timeline of each context's device activity
 * (timeline.json for Perfetto, timeline.svg). All weights are random.
 * The pieces are in examples/demo/.
 *
 * Run: npx --yes deno@2.9.6 task demo [-- --backend host|cuda] [-- --help]
 */
import { type BackendChoice, backendFlag } from "./_backend.ts";
import { runDemo } from "./demo/demo.ts";
import { DEFAULT_OPTIONS, type DemoOptions, HELP, parseOptions } from "./demo/options.ts";

/** Options of `main` besides the backend. */
export interface MainOptions extends Partial<Omit<DemoOptions, "backend">> {
  /** Receives the progress lines while it runs (default: dropped). */
  progress?: (line: string) => void;
}

/** Runs the demo; returns the report it printed, for tests. */
export function main(
  backend: BackendChoice = backendFlag(),
  options: MainOptions = {},
): Promise<string[]> {
  const { progress = () => {}, ...rest } = options;
  return runDemo({ ...DEFAULT_OPTIONS, ...rest, backend }, progress);
}

if (import.meta.main) {
  let options: DemoOptions | "help";
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    console.error(`demo: ${(error as Error).message}`);
    Deno.exit(2);
  }
  if (options === "help") {
    console.log(HELP);
    Deno.exit(0);
  }
  try {
    const { backend, ...rest } = options;
    console.log((await main(backend, { ...rest, progress: console.log })).join("\n"));
  } catch (error) {
    // A clear message, not a stack trace: the usual causes are a missing GPU or permission.
    const message = error instanceof Error ? error.message : String(error);
    console.error(`demo: ${message}`);
    Deno.exit(1);
  }
}
