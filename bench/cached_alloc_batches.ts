/**
 * The cached allocate + free paths timed in long batches, best batch
 * reported: steadier than `deno bench` means on a shared machine, and
 * able to time another checkout's code (to compare two trees, run this
 * file once per tree, alternating).
 *
 * Run: deno run --allow-ffi --allow-env --allow-read bench/cached_alloc_batches.ts [path to a checkout] [label]
 * (default: this checkout; GPUSCHED_BACKEND=cuda times the CUDA backend, default host).
 *
 * Each line also times a control, first and last: two small objects made and dropped per
 * call, no gpusched code. On the machines measured so far (2026-12-01) a
 * Deno process sometimes runs every allocating loop about 2x slower, the
 * control included, and can flip between the two states mid-run; with
 * `--v8-flags=--no-concurrent-recompilation` it stayed in the fast state in
 * every run. Compare trees with alternating runs, several processes each.
 */

const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname;
const label = Deno.args[1] ?? "this tree";
const api = await import(`file://${Deno.realPathSync(root)}/mod.ts`);
const { contextSession, alloc, createContext, initialize, MB, MemoryPool, QoSPolicy, shutdown } =
  api;

const backend = Deno.env.get("GPUSCHED_BACKEND") ?? "host";
initialize({ backend });
const pool = new MemoryPool({ quota: 1024 * MB });
const ctx = createContext("batches", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
pool.allocate(4096).free(); // warm the size classes
ctx.alloc(65536).free();

/** Nanoseconds per call of the best of `batches` batches of `calls` calls. */
function best(fn: () => void, batches = 40, calls = 100_000): number {
  let fastest = Infinity;
  for (let b = 0; b < batches; b++) {
    const start = performance.now();
    for (let i = 0; i < calls; i++) fn();
    fastest = Math.min(fastest, (performance.now() - start) * 1e6 / calls);
  }
  return fastest;
}

/** The control's two objects: the shape of a block and its record, nothing more. */
class ControlRecord {
  state = "resident";
  index = -1;
}
class ControlBlock {
  readonly record = new ControlRecord();
  constructor(readonly size: number) {}
}
let controlSink: ControlBlock | undefined;
const control = () => {
  controlSink = new ControlBlock(4096);
  controlSink.record.state = "freed";
};
const controlBeforeNs = best(control);

const poolNs = best(() => pool.allocate(4096).free());
const ctxNs = best(() => ctx.alloc(65536).free());
const sessionNs = best(
  () => {
    using _s = contextSession(ctx);
    alloc(65536).free();
  },
  40,
  50_000,
);
const controlAfterNs = best(control);
console.log(
  `${label} (${backend}): MemoryPool 4 KiB ${poolNs.toFixed(1)} ns, ctx.alloc 64 KiB ${
    ctxNs.toFixed(1)
  } ns, ` +
    `sync session 64 KiB ${sessionNs.toFixed(1)} ns, control ${controlBeforeNs.toFixed(1)} / ${
      controlAfterNs.toFixed(1)
    } ns`,
);
shutdown();
