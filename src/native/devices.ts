/**
 * The FFI side of devices: libsched's current device, device descriptions,
 * memory and peer access.
 *
 * @module
 */

import { lib } from "./loader.ts";
import { unwrap } from "./unwrap.ts";

import type { DeviceInfo, MemoryInfo } from "../device_info.ts";

// Layout of sched_device_info (sched.h): char name[256]; uint64 total, free;
// int32 sm_count, priority_least, priority_greatest, major, minor, granularity,
// groups; padded to 8 bytes.
const INFO_SIZE = 304;
const decoder = new TextDecoder();

/**
 * Makes `device` libsched's current device on this thread: streams, events,
 * pools and partitions created next live there (calls on existing handles
 * act on their own device whatever the current one is).
 */
export function useDevice(device: number): void {
  if (device === current) return;
  unwrap(lib().sched_set_device(device), `Cannot use device ${device}`);
  current = device;
}

/**
 * libsched's current device on this thread as last set here (each
 * JavaScript thread has its own copy of this module and its own libsched
 * current device), so that creating objects on one device costs no FFI
 * call per object; -1 when unknown.
 */
let current = -1;

/**
 * Makes `device` current for code outside libsched on this thread (CUDA:
 * `cudaSetDevice`), always crossing FFI: libsched calls on handles of other
 * devices move the CUDA runtime's current device, so call it right before
 * launching your own kernels or cuBLAS on a context's stream.
 */
export function makeDeviceCurrent(device: number): void {
  unwrap(lib().sched_set_device(device), `Cannot make device ${device} current`);
  current = device;
}

/** Forgets the cached current device: `sched_init` resets it to the default device. */
export function forgetCurrentDevice(): void {
  current = -1;
}

/** Reads sched_device_info for device `id` of the initialized backend. */
export function readDeviceInfo(id: number): DeviceInfo {
  useDevice(id);
  const raw = new Uint8Array(INFO_SIZE);
  unwrap(lib().sched_device_info_get(raw), "Cannot describe the device");
  const view = new DataView(raw.buffer);
  const nul = raw.indexOf(0);
  return {
    id,
    name: decoder.decode(raw.subarray(0, nul < 0 ? 256 : Math.min(nul, 256))),
    totalMemory: Number(view.getBigUint64(256, true)),
    smCount: view.getInt32(272, true),
    priorityRange: { least: view.getInt32(276, true), greatest: view.getInt32(280, true) },
    computeCapability: [view.getInt32(284, true), view.getInt32(288, true)],
    smGranularity: view.getInt32(292, true),
    smGroups: view.getInt32(296, true),
  };
}

const countOut = new Int32Array(1);

/** How many devices the initialized backend manages. */
export function readDeviceCount(backendId: number): number {
  unwrap(lib().sched_device_count(backendId, countOut), "Cannot count devices");
  return countOut[0]!;
}

const freeOut = new BigUint64Array(1);
const totalOut = new BigUint64Array(1);

/** Free and total bytes of device `id` of the initialized backend. */
export function readMemoryInfo(id: number): MemoryInfo {
  useDevice(id);
  unwrap(lib().sched_mem_info(freeOut, totalOut), "Cannot read device memory");
  return { free: Number(freeOut[0]), total: Number(totalOut[0]) };
}
