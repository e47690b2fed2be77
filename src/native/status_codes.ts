/**
 * libsched status codes (`sched_status` in libsched/include/sched.h).
 *
 * @module
 */

/** Status codes returned by every libsched function. */
export const Status = {
  OK: 0,
  INVALID_ARGUMENT: 1,
  INVALID_HANDLE: 2,
  OUT_OF_MEMORY: 3,
  NOT_READY: 4,
  NOT_INITIALIZED: 5,
  ALREADY_INITIALIZED: 6,
  NO_DEVICE: 7,
  UNSUPPORTED: 8,
  BACKEND: 9,
} as const;

/** Backend ids (`sched_backend`). */
export const BackendId = { NONE: 0, CUDA: 1, HOST: 2 } as const;

/** Copy directions (`sched_copy_kind`). */
export const CopyKind = { HOST_TO_DEVICE: 1, DEVICE_TO_HOST: 2, DEVICE_TO_DEVICE: 3 } as const;

const NAMES = Object.fromEntries(Object.entries(Status).map(([name, code]) => [code, name]));

/** `"OUT_OF_MEMORY"` for 3; `"UNKNOWN_42"` for codes libsched does not define. */
export function statusName(code: number): string {
  return NAMES[code] ?? `UNKNOWN_${code}`;
}
