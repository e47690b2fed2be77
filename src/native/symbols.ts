/**
 * The one symbol table of libsched (libsched/include/sched.h), with each C
 * parameter beside its FFI type. Everything else calls through `lib()` in
 * loader.ts, which opens the library with this table.
 *
 * Device pointers travel as `pointer`; handles as `u32`; out-parameters as
 * small typed arrays (`buffer`). Copies are declared once per direction so
 * the host side can be a typed array (`buffer`) without conversions.
 *
 * @module
 */

export const symbols = {
  sched_abi_version: { parameters: [], result: "i32" },
  sched_init: {
    parameters: [
      "i32", // int32_t backend
      "i32", // int32_t device
      "u64", // uint64_t host_capacity
    ],
    result: "i32",
  },
  sched_init_devices: {
    parameters: [
      "i32", // int32_t backend
      "i32", // int32_t device
      "i32", // int32_t host_devices
      "u64", // uint64_t host_capacity
    ],
    result: "i32",
  },
  sched_shutdown: { parameters: [], result: "i32" },
  sched_backend_active: { parameters: [], result: "i32" },
  sched_last_error: {
    parameters: [
      "buffer", // char *buf
      "u32", // uint32_t len
    ],
    result: "u32",
  },

  sched_device_count: {
    parameters: [
      "i32", // int32_t backend
      "buffer", // int32_t *out_count
    ],
    result: "i32",
  },
  sched_set_device: { parameters: ["i32" /* int32_t device */], result: "i32" },
  sched_get_device: { parameters: ["buffer" /* int32_t *out_device */], result: "i32" },
  sched_device_can_access_peer: {
    parameters: [
      "i32", // int32_t device
      "i32", // int32_t peer
      "buffer", // int32_t *out_can
    ],
    result: "i32",
  },
  sched_stream_device: {
    parameters: [
      "u32", // uint32_t stream
      "buffer", // int32_t *out_device
    ],
    result: "i32",
  },
  sched_pointer_device: {
    parameters: [
      "pointer", // const void *ptr
      "buffer", // int32_t *out_device
    ],
    result: "i32",
  },
  sched_device_info_get: {
    parameters: [
      "buffer", // sched_device_info *out
    ],
    result: "i32",
  },
  sched_mem_info: {
    parameters: [
      "buffer", // uint64_t *out_free
      "buffer", // uint64_t *out_total
    ],
    result: "i32",
  },

  sched_stream_create: {
    parameters: [
      "i32", // int32_t priority
      "u32", // uint32_t partition (0: the whole device)
      "buffer", // uint32_t *out_stream
      "buffer", // int32_t *out_priority
    ],
    result: "i32",
  },
  sched_stream_rebind: {
    parameters: [
      "u32", // uint32_t stream
      "u32", // uint32_t partition (0: the whole device)
    ],
    result: "i32",
  },
  sched_stream_destroy: { parameters: ["u32"], result: "i32" }, // uint32_t stream
  sched_stream_query: { parameters: ["u32"], result: "i32" }, // uint32_t stream
  sched_stream_synchronize: { parameters: ["u32"], result: "i32" }, // uint32_t stream
  sched_stream_native: {
    parameters: [
      "u32", // uint32_t stream
      "buffer", // void **out_native
    ],
    result: "i32",
  },
  sched_stream_wait_event: {
    parameters: [
      "u32", // uint32_t stream
      "u32", // uint32_t event
    ],
    result: "i32",
  },
  sched_launch_host_func: {
    parameters: [
      "u32", // uint32_t stream
      "function", // sched_host_fn fn
      "pointer", // void *user_data
    ],
    result: "i32",
  },

  sched_partition_create: {
    parameters: [
      "buffer", // const uint32_t *sm_counts
      "u32", // uint32_t n
      "buffer", // uint32_t *out_partitions (n + 1)
      "buffer", // uint32_t *out_sm_given (n + 1)
    ],
    result: "i32",
  },
  sched_partition_destroy: { parameters: ["u32"], result: "i32" }, // uint32_t partition
  sched_partition_create_sets: {
    parameters: [
      "buffer", // const uint64_t *group_masks
      "buffer", // const uint8_t *with_remainder
      "u32", // uint32_t n
      "buffer", // uint32_t *out_partitions (n)
      "buffer", // uint32_t *out_sm_given (n)
    ],
    result: "i32",
  },

  sched_event_create: {
    parameters: [
      "u32", // uint32_t flags
      "buffer", // uint32_t *out_event
    ],
    result: "i32",
  },
  sched_event_destroy: { parameters: ["u32"], result: "i32" }, // uint32_t event
  sched_event_record: {
    parameters: [
      "u32", // uint32_t event
      "u32", // uint32_t stream
    ],
    result: "i32",
  },
  sched_event_query: { parameters: ["u32"], result: "i32" }, // uint32_t event
  sched_event_synchronize: { parameters: ["u32"], result: "i32" }, // uint32_t event
  sched_event_elapsed_ms: {
    parameters: [
      "u32", // uint32_t start
      "u32", // uint32_t end
      "buffer", // float *out_ms
    ],
    result: "i32",
  },

  sched_pool_create: {
    parameters: [
      "u64", // uint64_t max_bytes
      "u64", // uint64_t release_threshold
      "buffer", // uint32_t *out_pool
    ],
    result: "i32",
  },
  sched_pool_destroy: { parameters: ["u32"], result: "i32" }, // uint32_t pool
  sched_pool_trim: {
    parameters: [
      "u32", // uint32_t pool
      "u64", // uint64_t keep_bytes
    ],
    result: "i32",
  },
  sched_pool_usage: {
    parameters: [
      "u32", // uint32_t pool
      "buffer", // uint64_t *out_used
      "buffer", // uint64_t *out_reserved
    ],
    result: "i32",
  },
  sched_malloc_async: {
    parameters: [
      "u32", // uint32_t pool
      "u32", // uint32_t stream
      "u64", // uint64_t bytes
      "buffer", // void **out_ptr
    ],
    result: "i32",
  },
  sched_free_async: {
    parameters: [
      "pointer", // void *ptr
      "u32", // uint32_t stream
    ],
    result: "i32",
  },
  sched_malloc: {
    parameters: [
      "u64", // uint64_t bytes
      "buffer", // void **out_ptr
    ],
    result: "i32",
  },
  sched_free: { parameters: ["pointer"], result: "i32" }, // void *ptr
  sched_host_alloc: {
    parameters: [
      "u64", // uint64_t bytes
      "buffer", // void **out_ptr
    ],
    result: "i32",
  },
  sched_host_free: { parameters: ["pointer"], result: "i32" }, // void *ptr
  sched_memcpy_h2d: {
    name: "sched_memcpy_async",
    parameters: [
      "pointer", // void *dst (device base)
      "u64", // uint64_t dst_offset
      "buffer", // const void *src (host)
      "u64", // uint64_t src_offset
      "u64", // uint64_t bytes
      "i32", // int32_t kind = SCHED_COPY_HOST_TO_DEVICE
      "u32", // uint32_t stream
    ],
    result: "i32",
  },
  sched_memcpy_d2h: {
    name: "sched_memcpy_async",
    parameters: [
      "buffer", // void *dst (host)
      "u64", // uint64_t dst_offset
      "pointer", // const void *src (device base)
      "u64", // uint64_t src_offset
      "u64", // uint64_t bytes
      "i32", // int32_t kind = SCHED_COPY_DEVICE_TO_HOST
      "u32", // uint32_t stream
    ],
    result: "i32",
  },
  sched_memcpy_async: {
    parameters: [
      "pointer", // void *dst (device base, or pinned host pointer for D2H)
      "u64", // uint64_t dst_offset
      "pointer", // const void *src (device base, or pinned host pointer for H2D)
      "u64", // uint64_t src_offset
      "u64", // uint64_t bytes
      "i32", // int32_t kind
      "u32", // uint32_t stream
    ],
    result: "i32",
  },
  sched_memset_async: {
    parameters: [
      "pointer", // void *dst (device base)
      "u64", // uint64_t offset
      "u8", // uint8_t value
      "u64", // uint64_t bytes
      "u32", // uint32_t stream
    ],
    result: "i32",
  },

  // Virtual memory (stable device addresses); `device` first: the initialized device.
  sched_vmm_granularity: {
    parameters: ["i32", "buffer"], // int32_t device, uint64_t *out_bytes
    result: "i32",
  },
  sched_vmm_reserve: {
    parameters: ["i32", "u64", "buffer"], // int32_t device, uint64_t bytes, void **out_base
    result: "i32",
  },
  sched_vmm_unreserve: {
    parameters: ["i32", "pointer"], // int32_t device, void *base
    result: "i32",
  },
  sched_vmm_commit: {
    parameters: ["i32", "pointer", "u64"], // int32_t device, void *ptr, uint64_t bytes
    result: "i32",
  },
  sched_vmm_decommit: {
    parameters: ["i32", "pointer", "u32"], // int32_t device, void *ptr, uint32_t stream
    result: "i32",
  },
  sched_vmm_flush: {
    parameters: ["i32"], // int32_t device
    result: "i32",
  },
  sched_vmm_reap: {
    parameters: ["i32"], // int32_t device
    result: "i32",
  },
  sched_vmm_usage: {
    parameters: ["i32", "buffer", "buffer"], // int32_t device, uint64_t *out_committed, uint64_t *out_mapped
    result: "i32",
  },

  // Host backend only, for tests: the next `count` calls of a kind fail.
  sched_host_inject_fault: {
    parameters: [
      "i32", // int32_t kind (sched_fault)
      "u32", // uint32_t count
    ],
    result: "i32",
  },
  sched_notifier_install: { parameters: ["function"], result: "i32" }, // sched_notify_fn fn
  sched_stream_notify: {
    parameters: [
      "u32", // uint32_t stream
      "u32", // uint32_t token
    ],
    result: "i32",
  },
  sched_event_notify: {
    parameters: [
      "u32", // uint32_t event
      "u32", // uint32_t token
    ],
    result: "i32",
  },
  sched_completions_drain: {
    parameters: [
      "buffer", // uint32_t *tokens
      "buffer", // int32_t *statuses
      "u32", // uint32_t capacity
    ],
    result: "u32",
  },
  // Parks a Deno pool thread inside libsched until completions are queued
  // (see completions.ts): nothing of libsched ever calls into JavaScript.
  sched_completions_wait: { parameters: [], result: "u32", nonblocking: true },
  sched_completions_wake: { parameters: [], result: "void" },
  sched_debug_counts: {
    parameters: [
      "buffer", // uint64_t *out
      "u32", // uint32_t n
    ],
    result: "void",
  },
  // Blocking waits, declared again to run on Deno's FFI thread pool. Only
  // benchmarks use them: each holds a pool thread for the whole wait, which
  // is what the notifier path (sched_stream_notify) exists to avoid.
  sched_stream_synchronize_nonblocking: {
    name: "sched_stream_synchronize",
    parameters: ["u32"], // uint32_t stream
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library's callable symbols. */
export type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];
