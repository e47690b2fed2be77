/**
 * Model swapping with sleeping contexts (API.md "Sleeping contexts and
 * stable device addresses"): three models, larger together than the
 * device's budget, served round robin. Each request wakes its model (its
 * reservation re-admitted, its weights copied back from pinned host memory
 * at the same device addresses), serves, and puts it back to sleep so the
 * next model fits.
 *
 * Run: deno run --allow-ffi examples/model_swap.ts [--backend host|cuda]
 */
import {
  createContext,
  type DeviceBuffer,
  type ExecutionContext,
  getContextUsage,
  initialize,
  MB,
  QoSPolicy,
  shutdown,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

interface Model {
  ctx: ExecutionContext;
  weights: DeviceBuffer[];
  /** Each weight buffer's address when loaded: a table of pointers a user's kernels would keep. */
  pointers: bigint[];
  probe: Uint8Array[];
}

const MODEL_BYTES = 48 * MB;
const DEVICE_BYTES = 128 * MB;
const LAYERS = 3;

function pattern(model: number, layer: number, bytes: number): Uint8Array {
  return new Uint8Array(bytes).map((_, i) => (i * (7 + model) + layer * 13) & 0xff);
}

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  const timings: string[] = [];
  initialize({ backend, hostMemory: DEVICE_BYTES, memoryLimit: DEVICE_BYTES });
  try {
    const models: Model[] = [];
    // Load each model, then put it to sleep so the next one's reservation fits.
    for (const [m, name] of ["chat", "code", "vision"].entries()) {
      const ctx = createContext(name, { maxVram: MODEL_BYTES, qos: QoSPolicy.GUARANTEED });
      const weights: DeviceBuffer[] = [];
      const probe: Uint8Array[] = [];
      for (let layer = 0; layer < LAYERS; layer++) {
        const buf = ctx.alloc(MODEL_BYTES / LAYERS);
        const data = pattern(m, layer, buf.size);
        await buf.write(data);
        weights.push(buf);
        probe.push(data.subarray(0, 4096).slice());
      }
      const pointers = weights.map((w) => Deno.UnsafePointer.value(w.ptr));
      await ctx.sleep();
      models.push({ ctx, weights, pointers, probe });
    }
    lines.push(
      `${models.length} models of ${MODEL_BYTES / MB} MiB, ${
        DEVICE_BYTES / MB
      } MiB of device memory: one awake at a time`,
    );

    let intact = true;
    for (let round = 1; round <= 2; round++) {
      for (const model of models) {
        const start = performance.now();
        await model.ctx.wake();
        const ms = performance.now() - start;
        const used = getContextUsage(model.ctx).used;
        timings.push(
          `wake ${model.ctx.name}: ${used / MB} MiB in ${ms.toFixed(1)} ms (${
            (used / (ms / 1000) / 1e9).toFixed(1)
          } GB/s)`,
        );
        // "Serve": the weights are where the model's pointer table says, and intact.
        let ok = model.weights.every((w, i) =>
          Deno.UnsafePointer.value(w.ptr) === model.pointers[i]
        );
        for (const [i, w] of model.weights.entries()) {
          const head = new Uint8Array(4096);
          await w.read(head);
          ok &&= head.every((v, j) => v === model.probe[i]![j]);
        }
        intact &&= ok;
        lines.push(
          `round ${round}: ${model.ctx.name} served, weights intact at the same addresses: ${ok}`,
        );
        await model.ctx.sleep();
      }
    }
    lines.push(`every wake restored its weights bit-exact at the same addresses: ${intact}`);
    if (import.meta.main) lines.push(...timings);
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
