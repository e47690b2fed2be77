/**
 * Basic contexts (API.md "Units and lifecycle", "Execution contexts and QoS"):
 * start the scheduler, give three models a context each, look at them.
 *
 * Run: deno run --allow-ffi examples/basic_contexts.ts [--backend host|cuda]
 */
import {
  createContext,
  destroyContext,
  GB,
  getAvailableVram,
  getStream,
  initialize,
  MB,
  QoSPolicy,
  shutdown,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export function main(backend: BackendChoice = backendFlag()): string[] {
  const lines: string[] = [];
  const sched = initialize({ backend, hostMemory: 8 * GB });
  try {
    const llm = createContext("llm", { maxVram: 1 * GB, qos: QoSPolicy.GUARANTEED });
    const tts = createContext("tts", {
      maxVram: 512 * MB,
      baseVram: 256 * MB,
      qos: QoSPolicy.BURSTABLE,
    });
    const bg = createContext("background", { maxVram: 256 * MB, qos: QoSPolicy.BEST_EFFORT });
    const vision = createContext("vision", { maxVram: 256 * MB }); // BURSTABLE, base 0
    for (const ctx of [llm, tts, bg, vision]) {
      lines.push(
        `${ctx.name.padEnd(10)} ${ctx.qos.padEnd(11)} max ${ctx.maxVram / MB} MiB, ` +
          `reserved ${ctx.reserved / MB} MiB, stream priority ${getStream(ctx).priority}`,
      );
    }
    destroyContext(bg);
    lines.push(`backend ${sched.backend}; available ${(getAvailableVram() / MB).toFixed(0)} MiB`);
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log(main().join("\n"));
