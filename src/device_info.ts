/**
 * What the scheduler tells users about its devices (`sched.devices`).
 *
 * @module
 */

/** A description of one device a scheduler manages (`sched.devices[id]`). */
export interface DeviceInfo {
  /** Device index within its backend. */
  readonly id: number;
  /** e.g. `"NVIDIA H100 80GB HBM3"` or `"Host CPU (simulated device)"`. */
  readonly name: string;
  /** Bytes of device memory. */
  readonly totalMemory: number;
  /**
   * Streaming multiprocessors. The host backend simulates 132 (in groups of
   * 8, as an H100 or H200 has) so that SM partitions get the same sizes there.
   */
  readonly smCount: number;
  /** Stream priorities: `least` is the lowest (numerically largest), `greatest` the highest. */
  readonly priorityRange: { readonly least: number; readonly greatest: number };
  /** Compute capability `[major, minor]`; `[0, 0]` on the host backend. */
  readonly computeCapability: readonly [number, number];
  /**
   * SMs per partition group (green contexts: 8 on H100/H200; host: 8); 0
   * when SMs cannot be partitioned (CUDA before compute capability 9.0).
   */
  readonly smGranularity: number;
  /**
   * Groups of `smGranularity` SMs that partitions can take: fewer than
   * `smCount / smGranularity` where the device's SM clusters leave SMs over
   * (those stay with work outside partitions). 0 when unsupported.
   */
  readonly smGroups: number;
}

/** Free and total bytes of a device at one moment. */
export interface MemoryInfo {
  /** Bytes the device could still allocate. */
  readonly free: number;
  /** Bytes of device memory. */
  readonly total: number;
}
