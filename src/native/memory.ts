/**
 * Thin, checked wrappers over libsched's memory calls (pinned host memory,
 * copies, the stream-ordered pools the benchmarks compare against), shared
 * by staging, eviction and device-to-device copies. Out-of-memory is a
 * value (null), because the callers react to it by making room; every
 * other failure throws.
 *
 * @module
 */

import { NativeError } from "../errors.ts";
import { useDevice } from "./devices.ts";
import { lib } from "./loader.ts";
import { CopyKind, Status } from "./status_codes.ts";
import { unwrap } from "./unwrap.ts";

const ptrOut = new BigUint64Array(1);
const handleOut = new Uint32Array(1);

/** A stream-ordered libsched pool on `device`, capped at maxBytes (0: no cap of ours); returns its handle. */
export function createNativePool(maxBytes: number, device = 0): number {
  useDevice(device);
  // Release threshold 0: bytes this pool gives back go back to the device
  // for everyone; the TypeScript pool does its own caching.
  unwrap(lib().sched_pool_create(BigInt(maxBytes), 0n, handleOut), "Cannot create a memory pool");
  return handleOut[0]!;
}

/** Device memory ordered on stream; null when the device or pool is out of memory. */
export function deviceAlloc(
  pool: number,
  stream: number,
  bytes: number,
): Deno.PointerObject | null {
  const status = lib().sched_malloc_async(pool, stream, BigInt(bytes), ptrOut);
  if (status === Status.OUT_OF_MEMORY) return null;
  unwrap(status, `Cannot allocate ${bytes} bytes of device memory`);
  return Deno.UnsafePointer.create(ptrOut[0]!)!;
}

/** Frees device memory once stream reaches this point. */
export function deviceFree(ptr: Deno.PointerObject, stream: number): void {
  unwrap(lib().sched_free_async(ptr, stream), "Cannot free device memory");
}

/** Page-locked host memory; null when the host refuses. */
export function pinnedAlloc(bytes: number): Deno.PointerObject | null {
  const status = lib().sched_host_alloc(BigInt(bytes), ptrOut);
  if (status === Status.OUT_OF_MEMORY) return null;
  unwrap(status, `Cannot allocate ${bytes} bytes of pinned host memory`);
  return Deno.UnsafePointer.create(ptrOut[0]!)!;
}

/**
 * The error for pinned host memory the host refused (`pinnedAlloc` gave
 * null): a NativeError with libsched's OUT_OF_MEMORY status, wherever it
 * happens (staging a transfer, evicting a block).
 */
export function pinnedRefused(bytes: number, doing: string): NativeError {
  return new NativeError(
    Status.OUT_OF_MEMORY,
    `${doing}: ${bytes} bytes of pinned host memory refused`,
  );
}

/** Frees pinned host memory. */
export function pinnedFree(ptr: Deno.PointerObject): void {
  unwrap(lib().sched_host_free(ptr), "Cannot free pinned host memory");
}

/** Device to pinned host, in stream order. */
export function copyToHost(
  host: Deno.PointerObject,
  device: Deno.PointerObject,
  deviceOffset: number,
  bytes: number,
  stream: number,
  hostOffset = 0,
): void {
  unwrap(
    lib().sched_memcpy_async(
      host,
      BigInt(hostOffset),
      device,
      BigInt(deviceOffset),
      BigInt(bytes),
      CopyKind.DEVICE_TO_HOST,
      stream,
    ),
    `Cannot copy ${bytes} bytes from the device`,
  );
}

/**
 * Queues a device-to-device copy on `stream`: within one device, or between
 * two (peer copy where possible, else staged through host memory by the
 * backend). Both sides are allocation bases plus offsets, bounds-checked
 * by libsched.
 */
export function copyDeviceToDevice(
  dst: Deno.PointerObject,
  dstOffset: number,
  src: Deno.PointerObject,
  srcOffset: number,
  bytes: number,
  stream: number,
): void {
  unwrap(
    lib().sched_memcpy_async(
      dst,
      BigInt(dstOffset),
      src,
      BigInt(srcOffset),
      BigInt(bytes),
      CopyKind.DEVICE_TO_DEVICE,
      stream,
    ),
    `Cannot copy ${bytes} bytes between device buffers`,
  );
}

/** Pinned host to device, in stream order. */
export function copyToDevice(
  device: Deno.PointerObject,
  deviceOffset: number,
  host: Deno.PointerObject,
  bytes: number,
  stream: number,
  hostOffset = 0,
): void {
  unwrap(
    lib().sched_memcpy_async(
      device,
      BigInt(deviceOffset),
      host,
      BigInt(hostOffset),
      BigInt(bytes),
      CopyKind.HOST_TO_DEVICE,
      stream,
    ),
    `Cannot copy ${bytes} bytes to the device`,
  );
}
