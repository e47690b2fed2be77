/**
 * Test helpers: run a test on every backend (CUDA ones reported as ignored,
 * with the reason, when no device is usable), thin wrappers over raw
 * libsched calls, and the sample kernel libraries.
 */

import assert from "node:assert/strict";
import { cudaUnavailableReason, initialize, type Scheduler, shutdown } from "../mod.ts";
import { Random } from "../examples/demo/random.ts";
import { lib, localLibraryPath } from "../src/native/loader.ts";
import { Status, statusName } from "../src/native/status_codes.ts";
import { lastError } from "../src/native/unwrap.ts";
import type { BackendName } from "../src/scheduler.ts";

export { lib, Status };

/** Why CUDA tests are skipped here, or undefined when they run. */
export const cudaSkipReason: string | undefined = cudaUnavailableReason();

/** Backends a test file runs against, with the reason a backend is skipped. */
export const BACKENDS: readonly { name: BackendName; skip: string | undefined }[] = [
  { name: "host", skip: undefined },
  { name: "cuda", skip: cudaSkipReason },
];

/**
 * Simulated devices of the host backend in `backendTest` schedulers: 1, or
 * GPUSCHED_TEST_HOST_DEVICES (`deno task test:devices2` sets 2), or the
 * count of a `withHostDevices` call in progress. Tests place their contexts
 * on the default device, so every test must pass with any count.
 */
let hostDevices = readEnvInt("GPUSCHED_TEST_HOST_DEVICES", 1);
let variant = false;

/**
 * For test files that initialize schedulers themselves: the backends to
 * register on now (the host alone inside `withHostDevices`), each with the
 * `initialize` options that pick the simulated device count and a label
 * for test names ("host", "host, 2 devices", "cuda").
 */
export function variantBackends(): {
  name: BackendName;
  skip: string | undefined;
  label: string;
  devices: { hostDevices?: number };
}[] {
  const devices = hostDevices;
  return (variant ? BACKENDS.filter((b) => b.name === "host") : BACKENDS).map((b) => ({
    ...b,
    label: b.name === "host" && devices > 1 ? `host, ${devices} devices` : b.name,
    devices: b.name === "host" ? { hostDevices: devices } : {},
  }));
}

/**
 * Runs `register` (which imports test files) so that the `backendTest`s it
 * registers run on the host backend only, with `devices` simulated devices
 * and "[host, N devices]" in their names: a second variant of a file.
 */
export async function withHostDevices(
  devices: number,
  register: () => Promise<unknown>,
): Promise<void> {
  const before = hostDevices;
  hostDevices = devices;
  variant = true;
  try {
    await register();
  } finally {
    hostDevices = before;
    variant = false;
  }
}

/**
 * Registers `fn` once per backend, with a scheduler initialized for it and
 * shut down afterwards (also on failure). `hostMemory` sizes the host
 * backend's device and, unless `memoryLimit` says otherwise, caps the
 * managed memory on every backend, so a test sees the same budget on a
 * 141 GB GPU as on the host.
 */
export function backendTest(
  name: string,
  fn: (sched: Scheduler) => void | Promise<void>,
  options: { hostMemory?: number; memoryLimit?: number } = {},
): void {
  const limits = options.hostMemory === undefined
    ? options
    : { memoryLimit: options.hostMemory, ...options };
  const devices = hostDevices;
  for (const backend of variant ? BACKENDS.filter((b) => b.name === "host") : BACKENDS) {
    const label = backend.name === "host" && devices > 1
      ? `host, ${devices} devices`
      : backend.name;
    const host = backend.name === "host" ? { hostDevices: devices } : {};
    Deno.test({
      name: `[${label}] ${name}${backend.skip ? ` (skipped: ${backend.skip})` : ""}`,
      ignore: backend.skip !== undefined,
      async fn() {
        const sched = initialize({ backend: backend.name, ...host, ...limits });
        try {
          await fn(sched);
        } finally {
          shutdown();
        }
      },
    });
  }
}

/** Asserts a raw status, showing libsched's message when it differs. */
export function expectStatus(actual: number, expected: number, what = "status"): void {
  if (actual !== expected) {
    assert.fail(
      `${what}: expected ${statusName(expected)}, got ${statusName(actual)}: ${lastError()}`,
    );
  }
}

const u32Out = new Uint32Array(1);
const ptrOut = new BigUint64Array(1);

const nativeOut = new BigUint64Array(1);

/** The native stream (what user kernels take) of a raw libsched stream. */
export function nativeOf(stream: number): Deno.PointerValue {
  expectStatus(lib().sched_stream_native(stream, nativeOut), Status.OK);
  return Deno.UnsafePointer.create(nativeOut[0]!);
}

/** Creates a raw libsched stream (in a raw partition, 0: the whole device) and returns its handle. */
export function rawStream(priority = 0, partition = 0): number {
  expectStatus(
    lib().sched_stream_create(priority, partition, u32Out, new Int32Array(1)),
    Status.OK,
  );
  return u32Out[0]!;
}

/** Creates a raw event and returns its handle. */
export function rawEvent(flags = 0): number {
  expectStatus(lib().sched_event_create(flags, u32Out), Status.OK);
  return u32Out[0]!;
}

/** Creates a raw pool and returns its handle. */
export function rawPool(maxBytes = 0, releaseThreshold = 0): number {
  expectStatus(
    lib().sched_pool_create(BigInt(maxBytes), BigInt(releaseThreshold), u32Out),
    Status.OK,
  );
  return u32Out[0]!;
}

/** Allocates from a pool on a stream; returns the device pointer. */
export function rawMallocAsync(pool: number, stream: number, bytes: number): Deno.PointerObject {
  expectStatus(lib().sched_malloc_async(pool, stream, BigInt(bytes), ptrOut), Status.OK);
  return Deno.UnsafePointer.create(ptrOut[0]!)!;
}

/** Allocates synchronously; returns the device pointer. */
export function rawMalloc(bytes: number): Deno.PointerObject {
  expectStatus(lib().sched_malloc(BigInt(bytes), ptrOut), Status.OK);
  return Deno.UnsafePointer.create(ptrOut[0]!)!;
}

/** Host to device copy on a raw stream. */
export function h2d(
  dst: Deno.PointerValue,
  src: Uint8Array,
  stream: number,
  dstOffset = 0,
): number {
  return lib().sched_memcpy_h2d(dst, BigInt(dstOffset), src, 0n, BigInt(src.byteLength), 1, stream);
}

/** Device to host copy on a raw stream. */
export function d2h(
  dst: Uint8Array,
  src: Deno.PointerValue,
  stream: number,
  srcOffset = 0,
): number {
  return lib().sched_memcpy_d2h(dst, 0n, src, BigInt(srcOffset), BigInt(dst.byteLength), 2, stream);
}

/** Deterministic pseudo-random bytes, none of them zero (so never mistaken for a memset). */
export function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Random(seed >>> 0 || 1).fillBytes(new Uint8Array(n));
  for (let i = 0; i < n; i++) if (out[i] === 0) out[i] = 1;
  return out;
}

const kernelSymbols = {
  gs_fill_u32: { parameters: ["pointer", "pointer", "u32", "u64"], result: "i32" },
  gs_spin_ns: { parameters: ["pointer", "u64", "i32"], result: "i32" },
  gs_sm_ids: { parameters: ["pointer", "pointer", "i32", "u64"], result: "i32" },
  gs_wait_flag: { parameters: ["pointer", "pointer", "u64"], result: "i32" },
} as const;

type Kernels = Deno.DynamicLibrary<typeof kernelSymbols>["symbols"];
const kernelLibs = new Map<BackendName, Kernels>();

/**
 * The sample kernel library for a backend, opened the way a user opens
 * their own: `gs_fill_u32(stream.handle, buf, value, count)`,
 * `gs_spin_ns(stream.handle, ns, blocks)` and
 * `gs_sm_ids(stream.handle, buf, blocks, ns)` (the SM each block ran on) and
 * `gs_wait_flag(stream.handle, pinnedFlag, timeoutNs)` (holds the stream until the flag is set).
 */
export function kernels(backend: BackendName): Kernels {
  let k = kernelLibs.get(backend);
  if (!k) {
    const file = backend === "cuda" ? "libgskernels.so" : "libgskernels_host.so";
    k = Deno.dlopen(localLibraryPath(file), kernelSymbols).symbols;
    kernelLibs.set(backend, k);
  }
  return k;
}

/** A word of pinned host memory that `hold()` keeps streams waiting on until `open()`. */
export interface Gate {
  readonly ptr: Deno.PointerObject;
  open(): void;
}

/** A closed gate (freed with the scheduler's other pinned memory at shutdown). */
export function gate(): Gate {
  expectStatus(lib().sched_host_alloc(4n, ptrOut), Status.OK);
  const ptr = Deno.UnsafePointer.create(ptrOut[0]!)!;
  const word = new Uint32Array(Deno.UnsafePointerView.getArrayBuffer(ptr, 4));
  word[0] = 0;
  return { ptr, open: () => void (word[0] = 1) };
}

/**
 * Holds a stream until the gate opens (at most `timeoutMs`, so a failing
 * test cannot hang the device): work queued behind it stays queued for
 * exactly as long as the test needs.
 */
export function hold(
  backend: BackendName,
  stream: Deno.PointerValue,
  g: Gate,
  timeoutMs = 10_000,
): void {
  const status = kernels(backend).gs_wait_flag(stream, g.ptr, BigInt(timeoutMs * 1e6));
  assert.equal(status, 0, "gs_wait_flag failed");
}

/** Keeps a stream busy for `ms` milliseconds of device (or worker) time. */
export function spin(backend: BackendName, stream: Deno.PointerValue, ms: number): void {
  const status = kernels(backend).gs_spin_ns(stream, BigInt(Math.round(ms * 1e6)), 1);
  assert.equal(status, 0, "gs_spin_ns failed");
}

/**
 * A seeded generator of numbers in [0, 1): the demo's generator
 * (examples/demo/random.ts, mulberry32), so tests and demo share one. The
 * same seed gives the same sequence as before it was shared (seed 0 is 1).
 */
export function seededRandom(seed: number): () => number {
  const rng = new Random(seed >>> 0 || 1);
  return () => rng.next();
}

/** A positive integer from an environment variable, read only when --allow-env grants it. */
export function readEnvInt(name: string, fallback: number): number {
  const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
  const value = state === "granted" ? Number(Deno.env.get(name)) : NaN;
  return Number.isSafeInteger(value) && value > 0 ? value : fallback;
}
