/**
 * Explicit streams and events (API.md "Streams and events"): a producer
 * model hands its output to a consumer through an event; the consumer's
 * stream waits on the GPU, the host never blocks.
 *
 * Run: deno run --allow-ffi examples/streams_events.ts [--backend host|cuda]
 */
import {
  createContext,
  getStream,
  initialize,
  MB,
  recordEvent,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  initialize({ backend });
  try {
    const producer = createContext("vision", { maxVram: 64 * MB });
    const consumer = createContext("tts", { maxVram: 64 * MB });
    const features = producer.alloc(1 * MB);
    await features.write(new Float32Array(256 * 1024).fill(0.5));

    const ready = recordEvent(producer); // after the write, in vision's stream order
    waitEvent(consumer, ready); // tts's later work waits for it, on the device
    const consumed = recordEvent(consumer); // completes only after `ready` did
    await consumed.synchronize();
    lines.push(
      `event complete: ${ready.query()}; consumer stream idle: ${getStream(consumer).query()}`,
    );
    const out = new Float32Array(4);
    await features.read(out);
    lines.push(`producer output starts ${Array.from(out).join(", ")}`);
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
