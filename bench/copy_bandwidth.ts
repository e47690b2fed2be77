/**
 * Device-to-device copy bandwidth of `dst.copyFrom(src)` against the plain
 * copy it is built on, in the same run:
 *
 * - one device, 256 MiB: `copyFrom` (wall time from the call to its promise
 *   resolving, so its ordering and completion are included: awaited one at
 *   a time, and 8 issued at once then awaited together) against
 *   `cudaMemcpyAsync` device to device (`sched_memcpy_async`, a bounds check
 *   in front of it), timed with timing events on the stream;
 * - two devices (when the machine has them): `copyFrom` between device 0
 *   and 1 against `cudaMemcpyPeerAsync` (`sched_memcpy_async` across
 *   devices), and 8 contexts placed with `device: "auto"`, each filling its
 *   reservation, to show the placement and that every reservation holds.
 *
 * Prints one JSON line per figure. With one device the two-device part is
 * skipped with a line saying so.
 *
 * Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND bench/copy_bandwidth.ts
 * (GPUSCHED_BACKEND=host|cuda to force a backend; the host backend
 * simulates two devices so that every path runs there too).
 */
import {
  createContext,
  type DeviceBuffer,
  type ExecutionContext,
  initialize,
  MB,
  QoSPolicy,
  type Scheduler,
  shutdown,
} from "../mod.ts";
import { copyDeviceToDevice } from "../src/native/memory.ts";

const BYTES = 256 * MB;
const ROUNDS = 10;
const WARMUP = 3;
const PIPELINE = 8;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const gbps = (bytes: number, ms: number) => bytes / (ms / 1000) / 1e9;

function start(): Scheduler {
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" }).state;
  const choice = (state === "granted" ? Deno.env.get("GPUSCHED_BACKEND") : undefined) ?? "auto";
  const sched = initialize({
    backend: choice as "auto" | "cuda" | "host",
    hostDevices: 2,
    hostMemory: 2048 * MB,
  });
  console.log(
    `gpusched bench: backend ${sched.backend}, ${sched.devices.length} device(s): ${
      sched.devices.map((d) => d.name).join(", ")
    }`,
  );
  return sched;
}

/** Median ms of `copyFrom`, call to resolution. */
async function copyFromMs(dst: DeviceBuffer, src: DeviceBuffer): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const t0 = performance.now();
    await dst.copyFrom(src);
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return median(times);
}

/** Median ms per copy of `PIPELINE` copyFroms issued at once, then awaited together. */
async function pipelinedMs(dst: DeviceBuffer, src: DeviceBuffer): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: PIPELINE }, () => dst.copyFrom(src)));
    if (i >= WARMUP) times.push((performance.now() - t0) / PIPELINE);
  }
  return median(times);
}

/** Median ms of the plain copy on dst's stream, between timing events. */
async function rawMs(sched: Scheduler, dst: DeviceBuffer, src: DeviceBuffer): Promise<number> {
  const stream = dst.context.stream;
  const native = stream.nativeHandle("bench");
  const dstPtr = dst.ptr, srcPtr = src.ptr;
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const a = sched.createEvent({ timing: true, device: stream.device }).record(stream);
    copyDeviceToDevice(dstPtr, 0, srcPtr, 0, BYTES, native);
    const b = sched.createEvent({ timing: true, device: stream.device }).record(stream);
    await b.synchronize();
    if (i >= WARMUP) times.push(a.elapsedMs(b)!);
    a.destroy();
    b.destroy();
  }
  return median(times);
}

async function pair(
  sched: Scheduler,
  label: string,
  srcCtx: ExecutionContext,
  dstCtx: ExecutionContext,
  baseline: string,
): Promise<void> {
  const src = srcCtx.alloc(BYTES);
  const dst = dstCtx.alloc(BYTES);
  await src.write(new Uint8Array(BYTES).fill(1));
  const raw = await rawMs(sched, dst, src);
  const ours = await copyFromMs(dst, src);
  const piped = await pipelinedMs(dst, src);
  console.log(JSON.stringify({
    case: label,
    bytes: BYTES,
    [`${baseline}GBps`]: +gbps(BYTES, raw).toFixed(1),
    copyFromAwaitedEachGBps: +gbps(BYTES, ours).toFixed(1),
    ratioAwaitedEach: +(raw / ours).toFixed(3),
    [`copyFrom${PIPELINE}InFlightGBps`]: +gbps(BYTES, piped).toFixed(1),
    ratioInFlight: +(raw / piped).toFixed(3),
  }));
  src.free();
  dst.free();
}

const sched = start();
try {
  const a = createContext("bench-a", { maxVram: 2 * BYTES + 64 * MB, device: 0 });
  await pair(sched, "copyFrom, one device", a, a, "cudaMemcpyAsync");
  if (sched.devices.length < 2) {
    console.log(JSON.stringify({
      case: "two devices",
      skipped: `${sched.devices.length} device(s) on this machine; needs 2`,
    }));
  } else {
    const b = createContext("bench-b", { maxVram: 2 * BYTES + 64 * MB, device: 1 });
    await pair(sched, "copyFrom, device 0 -> 1", a, b, "cudaMemcpyPeerAsync");
    a.destroy();
    b.destroy();
    // 8 contexts over 2 devices: each reserves a fifth of a device's limit.
    const chunk = 16 * MB; // a size class: the reservation is filled exactly
    const share = Math.floor(Math.min(...sched.memoryLimits.slice(0, 2)) / 5 / chunk) * chunk;
    const placed: number[] = [];
    for (let i = 0; i < 8; i++) {
      const ctx = createContext(`auto-${i}`, {
        maxVram: share,
        qos: i % 2 === 0 ? QoSPolicy.GUARANTEED : QoSPolicy.BURSTABLE,
        ...(i % 2 === 0 ? {} : { baseVram: share }),
        device: "auto",
      });
      placed.push(ctx.device);
      // Every reservation holds: the whole of it can be allocated.
      const held = Array.from({ length: share / chunk }, () => ctx.alloc(chunk));
      for (const buf of held) buf.free();
    }
    console.log(JSON.stringify({
      case: "8 contexts, device: auto",
      reservationBytes: share,
      devices: placed,
      perDevice: [0, 1].map((d) => placed.filter((p) => p === d).length),
    }));
  }
} finally {
  shutdown();
}
