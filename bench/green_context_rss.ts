/**
 * Issue 10 item 17 probe: RSS while partitions (green contexts) are made and deleted inside one
 * initialize() on CUDA. Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB bench/green_context_rss.ts
 */
import { initialize, MB, PartitionLimits, PartitionManager, shutdown } from "../mod.ts";
const rss = () => (Deno.memoryUsage().rss / MB).toFixed(1);
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
console.log(`start RSS ${rss()} MiB`);
for (let i = 1; i <= 400; i++) {
  const share = shares[i % shares.length]!;
  manager.createPartition("p", "P", new PartitionLimits().compute(share));
  const s = sched.createStream({ partition: "p" });
  s.destroy();
  manager.deletePartition("p");
  if (i % 100 === 0) {
    console.log(`after ${i} create/delete (${shares.length} distinct shares): RSS ${rss()} MiB`);
  }
}
shutdown();
console.log(`after shutdown RSS ${rss()} MiB`);
