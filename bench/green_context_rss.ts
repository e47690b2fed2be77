/**
 * Issue 10 item 17 probe: RSS while partitions (green contexts) are made and deleted inside one
 * initialize() on CUDA. Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB bench/green_context_rss.ts
 * Modes (`--mode=`): `churn` (default) makes and deletes a partition per cycle and one stream in it;
 * `bare` the same without the stream; `streams` makes one partition and then a stream in it per
 * cycle. `--cycles=N` (default 400).
 */
import { initialize, MB, PartitionLimits, PartitionManager, shutdown } from "../mod.ts";
const rss = () => (Deno.memoryUsage().rss / MB).toFixed(1);
const arg = (name: string, fallback: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const mode = arg("mode", "churn");
const cycles = Number(arg("cycles", "400"));
const sched = initialize({ backend: "cuda", memoryLimit: 512 * MB });
const manager = new PartitionManager();
const shares = [
  0.125,
  0.25,
  0.375,
  0.5,
  0.625,
  0.75,
  0.0625 * 3,
  0.0625 * 5,
  0.0625 * 7,
  0.0625 * 9,
  0.0625 * 11,
];
console.log(`mode ${mode}: start RSS ${rss()} MiB`);
if (mode === "streams") manager.createPartition("p", "P", new PartitionLimits().compute(0.25));
for (let i = 1; i <= cycles; i++) {
  const share = shares[i % shares.length]!;
  if (mode !== "streams") manager.createPartition("p", "P", new PartitionLimits().compute(share));
  if (mode !== "bare") sched.createStream({ partition: "p" }).destroy();
  if (mode !== "streams") manager.deletePartition("p");
  if (i % 100 === 0) {
    console.log(`after ${i} cycles (${shares.length} distinct shares): RSS ${rss()} MiB`);
  }
}
shutdown();
console.log(`after shutdown RSS ${rss()} MiB`);
