/**
 * VRAM budgeting and memory pressure (API.md "Device memory"): budgets that
 * hold, a pressure handler that decides, evictable buffers that move to
 * host memory and come back bit-exact.
 *
 * Run: deno run --allow-ffi examples/vram_budgeting.ts [--backend host|cuda]
 */
import {
  createContext,
  getContextUsage,
  initialize,
  MB,
  onMemoryPressure,
  QoSPolicy,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  const sched = initialize({ backend, hostMemory: 256 * MB, memoryLimit: 256 * MB });
  try {
    const llm = createContext("llm", { maxVram: 128 * MB, qos: QoSPolicy.GUARANTEED });
    const bg = createContext("background", { maxVram: 256 * MB, qos: QoSPolicy.BEST_EFFORT });

    // Best effort fills what is left, with buffers it allows to be evicted.
    const first = bg.alloc(16 * MB, { evictable: true });
    const data = new Uint8Array(16 * MB).map((_, i) => (i * 31) & 0xff);
    await first.write(data);
    const cache = [first];
    for (let i = 0; i < 7; i++) cache.push(bg.alloc(16 * MB, { evictable: true }));

    const off = onMemoryPressure((ctx, requested, available) => {
      lines.push(
        `pressure: ${ctx.name} wants ${requested / MB} MiB, ${available / MB} MiB available`,
      );
      return true; // let the scheduler evict
    });
    try {
      bg.alloc(16 * MB, { evictable: true }); // bg is at the limit: evicts its own LRU buffer
    } finally {
      off();
    }
    lines.push(`first background buffer is now ${first.state}`);

    // The guaranteed context's allocations inside its budget always succeed.
    const weights = llm.alloc(120 * MB);
    lines.push(`llm holds ${getContextUsage(llm).used / MB} MiB of its ${llm.maxVram / MB} MiB`);
    try {
      llm.alloc(16 * MB);
    } catch (error) {
      if (!(error instanceof VramBudgetExceededError)) throw error;
      lines.push(`past its budget: ${error.message}`);
    }
    weights.free();

    // Using an evicted buffer brings it back, bit-exact.
    const back = new Uint8Array(16 * MB);
    await first.read(back);
    lines.push(`restored bit-exact: ${back.every((v, i) => v === data[i])} (${sched.backend})`);
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
