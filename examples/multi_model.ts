/**
 * The multi-model demo. For now it starts the scheduler and shows what it
 * found: backend, device and memory. (The full LLM + TTS + vision demo
 * builds on the scheduler API; see the project's issues.)
 *
 * Run: npx --yes deno@2.9.6 task demo [-- --backend host|cuda|auto]
 */
import { GB, initialize, MB, shutdown } from "../mod.ts";

function backendFromArgs(args: readonly string[]): "auto" | "cuda" | "host" {
  const i = args.indexOf("--backend");
  const value = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith("--backend="))?.slice(10);
  if (value === undefined) return "auto";
  if (value === "auto" || value === "cuda" || value === "host") return value;
  console.error(`Unknown --backend ${JSON.stringify(value)}: expected host, cuda or auto`);
  Deno.exit(2);
}

function gib(bytes: number): string {
  return bytes >= GB ? `${(bytes / GB).toFixed(2)} GiB` : `${(bytes / MB).toFixed(1)} MiB`;
}

let sched;
try {
  sched = initialize({ backend: backendFromArgs(Deno.args) });
} catch (error) {
  console.error(`gpusched: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(1);
}
try {
  const { device } = sched;
  const memory = sched.memoryInfo();
  const stream = sched.createStream({ priority: device.priorityRange.greatest });
  await stream.synchronize();
  console.log(`backend       ${sched.backend}`);
  console.log(`device        ${device.id}: ${device.name}`);
  if (sched.backend === "cuda") {
    console.log(`compute       sm_${device.computeCapability.join("")}, ${device.smCount} SMs`);
  } else {
    console.log(`workers       ${device.smCount} CPU cores`);
  }
  console.log(
    `priorities    ${device.priorityRange.greatest} (most urgent) to ${device.priorityRange.least}`,
  );
  console.log(`memory        ${gib(memory.free)} free of ${gib(memory.total)}`);
  console.log(`managed       ${gib(sched.memoryLimit)} (memoryLimit)`);
} finally {
  shutdown();
}
