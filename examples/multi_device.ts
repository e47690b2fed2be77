/**
 * Several devices (API.md "Several devices"): a vision model and an LLM on
 * two devices, a third context placed with `device: "auto"`, the vision
 * features handed to the LLM's device with `copyFrom` after an event.
 * On the host backend two simulated devices stand in for two GPUs; on CUDA
 * with one GPU everything lands on device 0 and the example says so.
 *
 * Run: deno run --allow-ffi examples/multi_device.ts [--backend host|cuda]
 */
import {
  createContext,
  getAvailableVram,
  initialize,
  MB,
  QoSPolicy,
  recordEvent,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  const sched = initialize({
    backend,
    hostDevices: 2,
    hostMemory: 2048 * MB,
    memoryLimit: 2048 * MB,
  });
  try {
    const last = sched.devices.length - 1;
    lines.push(`${sched.devices.length} device(s); default device ${sched.device.id}`);
    const vision = createContext("vision", {
      maxVram: 256 * MB,
      qos: QoSPolicy.GUARANTEED,
      device: 0,
    });
    const llm = createContext("llm", {
      maxVram: 768 * MB,
      qos: QoSPolicy.GUARANTEED,
      device: last,
    });
    const tts = createContext("tts", { maxVram: 256 * MB, baseVram: 128 * MB, device: "auto" });
    lines.push(`vision on ${vision.device}, llm on ${llm.device}, tts (auto) on ${tts.device}`);
    lines.push(
      `available: ${
        sched.devices.map((d) => `device ${d.id} ${getAvailableVram(d.id) / MB} MiB`).join(", ")
      }`,
    );

    const features = vision.alloc(4 * MB);
    await features.write(new Float32Array(MB).fill(0.25));
    waitEvent(llm, recordEvent(vision)); // llm's later work waits for vision's, across devices
    const input = llm.alloc(4 * MB);
    await input.copyFrom(features); // device to device (peer copy between GPUs)
    const out = new Float32Array(4);
    await input.read(out);
    lines.push(`llm input starts ${Array.from(out).join(", ")}`);
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
