/**
 * Thin, checked wrappers over libsched's virtual memory calls
 * (`sched_vmm_*`: CUDA's VMM API; on the host backend, reserved address
 * space committed and decommitted page by page). Out-of-memory on commit is
 * a value (false), because the pools react to it by making room; every
 * other failure throws a NativeError.
 *
 * @module
 */

import { lib } from "./loader.ts";
import { Status } from "./status_codes.ts";
import { unwrap } from "./unwrap.ts";

const u64Out = new BigUint64Array(1);
const u64Out2 = new BigUint64Array(1);

/** Bytes physical memory is mapped in on `device`. */
export function vmmGranularity(device: number): number {
  unwrap(lib().sched_vmm_granularity(device, u64Out), "Cannot read the mapping granularity");
  return Number(u64Out[0]);
}

/** Reserves `bytes` of address space on `device` (nothing mapped); returns its base address. */
export function vmmReserve(device: number, bytes: number): bigint {
  unwrap(
    lib().sched_vmm_reserve(device, BigInt(bytes), u64Out),
    `Cannot reserve ${bytes} bytes of device address space`,
  );
  return u64Out[0]!;
}

/** Commits a block at its address; false when the device has no memory left. */
export function vmmCommit(device: number, ptr: Deno.PointerObject, bytes: number): boolean {
  const status = lib().sched_vmm_commit(device, ptr, BigInt(bytes));
  if (status === Status.OUT_OF_MEMORY) return false;
  unwrap(status, `Cannot map ${bytes} bytes of device memory`);
  return true;
}

/** Decommits a block once `stream` has finished the work queued so far. */
export function vmmDecommit(device: number, ptr: Deno.PointerObject, stream: number): void {
  unwrap(lib().sched_vmm_decommit(device, ptr, stream), "Cannot unmap device memory");
}

/** Waits for pending decommits so their physical memory is really free. */
export function vmmFlush(device: number): void {
  unwrap(lib().sched_vmm_flush(device), "Cannot release unmapped device memory");
}

/** Unmaps the memory of decommits whose stream work is done; never waits. */
export function vmmReap(device: number): void {
  unwrap(lib().sched_vmm_reap(device), "Cannot release unmapped device memory");
}

/** Bytes in committed blocks and bytes of physical memory mapped, natively. */
export function vmmUsage(device: number): { committed: number; mapped: number } {
  unwrap(lib().sched_vmm_usage(device, u64Out, u64Out2), "Cannot read virtual memory usage");
  return { committed: Number(u64Out[0]), mapped: Number(u64Out2[0]) };
}
