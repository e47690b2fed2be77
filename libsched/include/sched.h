/*
 * libsched: the whole C ABI of gpusched's native layer.
 *
 * Mechanism only: streams, SM partitions, events, device allocations,
 * copies and completion notification. Policy (who may allocate what) lives in
 * TypeScript. One library holds two backends with the same semantics,
 * chosen at run time by sched_init():
 *   - cuda: the CUDA runtime (linked statically) on a real device;
 *   - host: the CPU. "Device memory" is heap memory counted against a
 *     configured capacity, each stream is a worker thread running its
 *     queue in order, events are completion points other streams wait on.
 *
 * Conventions
 *   - Every function returns a sched_status (SCHED_OK = 0) unless noted.
 *     On failure, sched_last_error() on the same thread gives the text.
 *   - Handles (streams, partitions, events, memory pools) are 32-bit ids:
 *     0 is never valid (where a partition is asked for, 0 means the whole
 *     device), a destroyed handle is rejected with
 *     SCHED_ERR_INVALID_HANDLE and never reaches freed memory. A destroy
 *     refuses the handle at once and returns when calls already using it on
 *     other threads have returned (a synchronize included).
 *   - Device allocations are named by their base pointer; copies take a
 *     base pointer plus a byte offset, so every range is bounds-checked.
 *   - Out-parameters are written only on success.
 *   - All functions are thread-safe, except sched_init/sched_shutdown,
 *     which must not race any other call.
 *   - Several devices, as in CUDA: each thread has a current device
 *     (sched_set_device; the default device of sched_init until set).
 *     Streams, partitions, events, pools and allocations are created on the
 *     calling thread's current device and remember theirs; a call naming a
 *     handle or an allocation acts on that object's device, whatever the
 *     current device is.
 */
#ifndef GPUSCHED_SCHED_H
#define GPUSCHED_SCHED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SCHED_API __declspec(dllexport)
#else
#define SCHED_API __attribute__((visibility("default")))
#endif

/** ABI version; bumped on any incompatible change. */
#define SCHED_ABI_VERSION 2

/** Most devices one process can manage (host backend: most simulated devices). */
#define SCHED_MAX_DEVICES 64

typedef enum sched_status {
  SCHED_OK = 0,
  SCHED_ERR_INVALID_ARGUMENT = 1, /* a null, zero, negative or too large value */
  SCHED_ERR_INVALID_HANDLE = 2,   /* unknown, destroyed or wrong-kind handle/pointer */
  SCHED_ERR_OUT_OF_MEMORY = 3,    /* device, pool or pinned host memory exhausted */
  SCHED_ERR_NOT_READY = 4,        /* query: work still pending (not a failure) */
  SCHED_ERR_NOT_INITIALIZED = 5,  /* call before sched_init or after sched_shutdown */
  SCHED_ERR_ALREADY_INITIALIZED = 6,
  SCHED_ERR_NO_DEVICE = 7,        /* backend unusable: no driver, no device, bad index */
  SCHED_ERR_UNSUPPORTED = 8,      /* not available on this backend or device */
  SCHED_ERR_BACKEND = 9           /* any other failure reported by the backend */
} sched_status;

typedef enum sched_backend {
  SCHED_BACKEND_NONE = 0,
  SCHED_BACKEND_CUDA = 1,
  SCHED_BACKEND_HOST = 2
} sched_backend;

typedef enum sched_copy_kind {
  SCHED_COPY_HOST_TO_DEVICE = 1,
  SCHED_COPY_DEVICE_TO_HOST = 2,
  SCHED_COPY_DEVICE_TO_DEVICE = 3
} sched_copy_kind;

/** Event flags for sched_event_create. */
#define SCHED_EVENT_TIMING 1u /* record timestamps for sched_event_elapsed_ms */

/** What sched_device_info reports. Fixed layout: read it field by field. */
typedef struct sched_device_info {
  char name[256];
  uint64_t total_memory;      /* bytes */
  uint64_t free_memory;       /* bytes, at the time of the call */
  int32_t sm_count;           /* streaming multiprocessors (host: 132, simulated) */
  int32_t priority_least;     /* numerically largest stream priority (lowest) */
  int32_t priority_greatest;  /* numerically smallest stream priority (highest) */
  int32_t compute_major;      /* compute capability; 0 on host */
  int32_t compute_minor;
  int32_t sm_granularity;     /* SMs per partition group (host: 8); 0 when unsupported */
  int32_t sm_groups;          /* groups of sm_granularity SMs partitions can take (host: 16) */
} sched_device_info;

/** Host function run in stream order (sched_launch_host_func). */
typedef void (*sched_host_fn)(void *user_data);

/** Called from the notifier thread when completions are ready to drain. */
typedef void (*sched_notify_fn)(void);

/* ---------------------------------------------------------------- lifecycle */

/** ABI version of the loaded library (SCHED_ABI_VERSION). Never fails. */
SCHED_API int32_t sched_abi_version(void);

/**
 * Starts a backend on every device it can use. backend: SCHED_BACKEND_CUDA
 * or SCHED_BACKEND_HOST. device: the default device (each thread's current
 * device until it calls sched_set_device). host_capacity: simulated memory
 * in bytes of each host device (ignored by cuda). Same as
 * sched_init_devices(backend, device, 1, host_capacity). Fails with
 * SCHED_ERR_NO_DEVICE when the backend cannot run here (message says why:
 * no driver, no device, no such default device).
 *
 * The calling thread owns the initialized library. When it exits without
 * sched_shutdown (a terminated Deno Worker), the next sched_init, from any
 * thread, shuts the dead owner's objects down and takes over; a sched_init
 * on another thread while the owner lives waits up to 5 s for it to end,
 * then fails with SCHED_ERR_ALREADY_INITIALIZED. The first successful call
 * registers an atexit handler that parks libsched's threads at process
 * exit, so a program ending without sched_shutdown never has them touch
 * CUDA or callers' code while the process tears down.
 */
SCHED_API int32_t sched_init(int32_t backend, int32_t device, uint64_t host_capacity);

/**
 * sched_init with host_devices simulated devices on the host backend (1 to
 * SCHED_MAX_DEVICES), each of host_capacity bytes with its own streams,
 * partitions and pools. cuda ignores host_devices and initializes every
 * visible device (at most SCHED_MAX_DEVICES), enabling peer access between
 * every pair that supports it.
 */
SCHED_API int32_t sched_init_devices(int32_t backend, int32_t device, int32_t host_devices, uint64_t host_capacity);

/**
 * Waits for all streams, then destroys every stream, event, pool and
 * allocation the backend still holds. Safe to call when not initialized.
 * Completion tokens still pending are completed (status SCHED_OK) first.
 */
SCHED_API int32_t sched_shutdown(void);

/** The active backend (sched_backend); SCHED_BACKEND_NONE when not initialized. */
SCHED_API int32_t sched_backend_active(void);

/**
 * Copies the calling thread's last error text into buf (NUL-terminated,
 * truncated to len) and returns the full text length. Never fails.
 */
SCHED_API uint32_t sched_last_error(char *buf, uint32_t len);

/* ------------------------------------------------------------------ devices */

/**
 * Number of devices the given backend can use (host: 1 before sched_init,
 * the simulated devices while it is initialized). Works before sched_init.
 * cuda without a driver: SCHED_ERR_NO_DEVICE with the CUDA text.
 */
SCHED_API int32_t sched_device_count(int32_t backend, int32_t *out_count);

/**
 * Makes device the calling thread's current device, on which later
 * creations happen; on cuda also the CUDA runtime's current device
 * (cudaSetDevice), so kernels the caller launches next go there. Other
 * libsched calls may change the CUDA runtime's current device (they bind
 * the device of the handle they act on): call this again right before
 * launching. INVALID_ARGUMENT for an index outside the initialized
 * devices; nothing changes then.
 */
SCHED_API int32_t sched_set_device(int32_t device);

/** The calling thread's current device. */
SCHED_API int32_t sched_get_device(int32_t *out_device);

/**
 * Whether device can read and write peer's memory directly (1) or copies
 * between them are staged through pinned host memory (0). Host backend:
 * always 1 between simulated devices; 1 for device == peer.
 */
SCHED_API int32_t sched_device_can_access_peer(int32_t device, int32_t peer, int32_t *out_can);

/** The device a stream was created on. */
SCHED_API int32_t sched_stream_device(uint32_t stream, int32_t *out_device);

/** The device a live device allocation (named by its base pointer) lives on. */
SCHED_API int32_t sched_pointer_device(const void *ptr, int32_t *out_device);

/** Describes the current device. */
SCHED_API int32_t sched_device_info_get(sched_device_info *out);

/** Free and total bytes of the current device. */
SCHED_API int32_t sched_mem_info(uint64_t *out_free, uint64_t *out_total);

/* ------------------------------------------------------------------ streams */

/**
 * Creates a non-blocking stream with a priority, clamped to the device's
 * range [priority_greatest, priority_least], in a partition (0: the whole
 * device; else its kernels run only on that partition's SMs). The effective
 * priority is written to out_priority (may be NULL). The stream lives on
 * the current device; a partition of another device is INVALID_ARGUMENT.
 */
SCHED_API int32_t sched_stream_create(int32_t priority, uint32_t partition, uint32_t *out_stream,
                                      int32_t *out_priority);

/**
 * Moves a stream to another partition (0: the whole device), keeping its
 * handle, priority and order: work queued after the call runs after all work
 * queued before it. The native stream changes (read sched_stream_native
 * again; the old one only finishes its queued work). Must not race other
 * calls naming this stream.
 */
SCHED_API int32_t sched_stream_rebind(uint32_t stream, uint32_t partition);

/** Destroys a stream. Work already queued still completes. */
SCHED_API int32_t sched_stream_destroy(uint32_t stream);

/** SCHED_OK when all queued work is done, SCHED_ERR_NOT_READY otherwise. */
SCHED_API int32_t sched_stream_query(uint32_t stream);

/** Blocks the calling thread until all queued work is done. */
SCHED_API int32_t sched_stream_synchronize(uint32_t stream);

/**
 * The backend's native stream: cudaStream_t on cuda, an opaque pointer on
 * host that sched_launch_host_func accepts. Users pass it to their own kernels.
 */
SCHED_API int32_t sched_stream_native(uint32_t stream, void **out_native);

/**
 * Makes all future work of stream wait for the event's latest record
 * (GPU-side). The event may belong to another device.
 */
SCHED_API int32_t sched_stream_wait_event(uint32_t stream, uint32_t event);

/**
 * Runs fn(user_data) in stream order (cudaLaunchHostFunc on cuda). fn must
 * not call libsched or CUDA. On host, this is how "kernels" run on a stream.
 */
SCHED_API int32_t sched_launch_host_func(uint32_t stream, sched_host_fn fn, void *user_data);

/** Same as sched_launch_host_func, naming the stream by its native pointer. */
SCHED_API int32_t sched_launch_host_func_native(void *native_stream, sched_host_fn fn, void *user_data);

/* --------------------------------------------------------------- partitions */

/**
 * Splits the whole device's SMs, in order, into n partitions of sm_counts[i]
 * SMs (each rounded up to whole groups of sm_granularity SMs) and one "rest"
 * of whatever remains; on cuda each is a green context. out_partitions and
 * out_sm_given get n + 1 entries, the rest last (0 and 0 SMs when nothing
 * remains). Every call makes a new set, independent of earlier ones, which
 * stay valid until destroyed. INVALID_ARGUMENT past sm_groups groups;
 * UNSUPPORTED before compute capability 9.0 or without green contexts in
 * the driver. On cuda it blocks until the device is idle (cuGreenCtxCreate
 * waits for queued kernels); the host backend only accounts.
 */
SCHED_API int32_t sched_partition_create(const uint32_t *sm_counts, uint32_t n, uint32_t *out_partitions,
                                         uint32_t *out_sm_given);

/**
 * Makes n partitions over SM groups of ONE split of the device, made once
 * per sched_init and reused by every call: partition i spans the groups
 * whose bits are set in group_masks[i] (bit g: group g, g < sm_groups, at
 * most 64 groups) plus, when with_remainder[i] is nonzero, the SMs the split
 * leaves over. Sets may overlap (a compute reservation's set spans its own
 * groups and the shared ones). out_partitions and out_sm_given get n
 * entries. On cuda each is a green context over one descriptor of several
 * resources of that split; a set equal to one made before (same groups,
 * same remainder) reuses that green context while it lives or is cached
 * (the 8 most recent sets stay cached), so only new sets cost a
 * cuGreenCtxCreate and its wait for the device to go idle. The host backend
 * only accounts (groups of 8 of 132 SMs, 4 left over). A set may be the
 * remainder alone (mask 0); INVALID_ARGUMENT for a set of no SM or a group past
 * sm_groups (also on cuda for a remainder alone that makes no green
 * context); UNSUPPORTED as sched_partition_create.
 */
SCHED_API int32_t sched_partition_create_sets(const uint64_t *group_masks, const uint8_t *with_remainder,
                                              uint32_t n, uint32_t *out_partitions, uint32_t *out_sm_given);

/**
 * Destroys a partition. Fails with INVALID_ARGUMENT while streams are bound
 * to it; work already queued by streams that left it still completes.
 */
SCHED_API int32_t sched_partition_destroy(uint32_t partition);

/* ------------------------------------------------------------------- events */

/** Creates an event (flags: SCHED_EVENT_TIMING or 0). */
SCHED_API int32_t sched_event_create(uint32_t flags, uint32_t *out_event);

/** Destroys an event; streams already waiting on it are unaffected. */
SCHED_API int32_t sched_event_destroy(uint32_t event);

/**
 * Records the event at the current tail of stream. The stream must be on
 * the event's device (as CUDA requires): INVALID_ARGUMENT otherwise.
 */
SCHED_API int32_t sched_event_record(uint32_t event, uint32_t stream);

/** SCHED_OK when the latest record completed (or none was made), else NOT_READY. */
SCHED_API int32_t sched_event_query(uint32_t event);

/** Blocks the calling thread until the latest record has completed. */
SCHED_API int32_t sched_event_synchronize(uint32_t event);

/** Milliseconds between two completed records of timing events. */
SCHED_API int32_t sched_event_elapsed_ms(uint32_t start, uint32_t end, float *out_ms);

/* ------------------------------------------------------------------- memory */

/**
 * Creates a stream-ordered memory pool on the device. max_bytes caps what
 * it may hold (0: no cap). Freed memory up to release_threshold bytes stays
 * reserved in the pool for fast reuse; the rest is returned to the device
 * at the next synchronization.
 */
SCHED_API int32_t sched_pool_create(uint64_t max_bytes, uint64_t release_threshold, uint32_t *out_pool);

/** Destroys a pool. Fails with INVALID_ARGUMENT while it has live allocations. */
SCHED_API int32_t sched_pool_destroy(uint32_t pool);

/** Releases unused memory the pool keeps, down to keep_bytes. */
SCHED_API int32_t sched_pool_trim(uint32_t pool, uint64_t keep_bytes);

/** Bytes in live allocations, and bytes the pool holds from the device. */
SCHED_API int32_t sched_pool_usage(uint32_t pool, uint64_t *out_used, uint64_t *out_reserved);

/**
 * Allocates bytes from pool, ordered on stream (cudaMallocAsync): the
 * memory may be used by work on stream queued after this call, and by
 * other streams once they have waited on an event recorded after it. The
 * stream must be on the pool's device: INVALID_ARGUMENT otherwise.
 */
SCHED_API int32_t sched_malloc_async(uint32_t pool, uint32_t stream, uint64_t bytes, void **out_ptr);

/** Frees ptr (from sched_malloc_async) once stream reaches this point. */
SCHED_API int32_t sched_free_async(void *ptr, uint32_t stream);

/** Synchronous allocation outside any pool (cudaMalloc). */
SCHED_API int32_t sched_malloc(uint64_t bytes, void **out_ptr);

/** Frees ptr from sched_malloc; waits for the device like cudaFree. */
SCHED_API int32_t sched_free(void *ptr);

/** Page-locked host memory for fast, asynchronous copies, usable with every device. */
SCHED_API int32_t sched_host_alloc(uint64_t bytes, void **out_ptr);

/** Frees memory from sched_host_alloc. */
SCHED_API int32_t sched_host_free(void *ptr);

/**
 * Copies bytes in stream order. Device sides are named by an allocation's
 * base pointer plus an offset and are bounds-checked; host sides are raw
 * pointers the caller keeps valid until the copy completes.
 *   H2D: dst = device base, dst_offset; src = host pointer (src_offset added)
 *   D2H: dst = host pointer (dst_offset added); src = device base, src_offset
 *   D2D: both device bases with offsets, on one device or two: between
 *        devices a peer copy where sched_device_can_access_peer says so,
 *        else staged through pinned host memory; same stream-order
 *        semantics either way (the stream may be on either device)
 */
SCHED_API int32_t sched_memcpy_async(void *dst, uint64_t dst_offset, const void *src, uint64_t src_offset,
                                     uint64_t bytes, int32_t kind, uint32_t stream);

/** Sets bytes of a device allocation to value, in stream order. */
SCHED_API int32_t sched_memset_async(void *dst, uint64_t offset, uint8_t value, uint64_t bytes, uint32_t stream);

/* ------------------------------------------------------- virtual memory */

/*
 * Device addresses that stay valid while physical memory moves (eviction,
 * sleeping contexts). A range of address space is reserved once; blocks
 * inside it are committed (backed by physical memory) and decommitted.
 * Physical memory is mapped in units of the granularity: a block whose
 * ends fall on the granularity and that spans two or more granules is
 * mapped alone; smaller or unaligned blocks share granules, each unmapped
 * once no committed block touches it. A committed block is a device
 * allocation named by its base pointer for sched_memcpy_async and
 * sched_memset_async. cuda: cuMemAddressReserve/cuMemCreate/cuMemMap;
 * host: mmap(PROT_NONE)/mprotect/madvise, charged against the capacity.
 * `device` names any initialized device (INVALID_ARGUMENT otherwise): a
 * commit backs the block with that device's memory (cuda: mapped for it
 * and for every peer with access to it), and a reservation's blocks should
 * all be committed on one device. Usage is reported per device; a flush or
 * reap releases what is pending on every device.
 */

/** Bytes physical memory is mapped in (H100/H200: 2 MiB; host: the page size). */
SCHED_API int32_t sched_vmm_granularity(int32_t device, uint64_t *out_bytes);

/** Reserves bytes (a multiple of the granularity) of address space, no memory. */
SCHED_API int32_t sched_vmm_reserve(int32_t device, uint64_t bytes, void **out_base);

/** Gives a reservation back; INVALID_ARGUMENT while any block in it is committed. */
SCHED_API int32_t sched_vmm_unreserve(int32_t device, void *base);

/**
 * Backs [ptr, ptr + bytes) with physical memory (ptr 256-byte aligned, inside
 * a reservation, not committed already). OUT_OF_MEMORY when the device has
 * none left, after waiting for decommits still pending.
 */
SCHED_API int32_t sched_vmm_commit(int32_t device, void *ptr, uint64_t bytes);

/**
 * Decommits a block: copies queued later that name it are refused at once;
 * its physical memory is unmapped once stream has finished the work queued
 * so far (VMM calls are not stream-ordered; an event orders this one).
 */
SCHED_API int32_t sched_vmm_decommit(int32_t device, void *ptr, uint32_t stream);

/** Waits for pending decommits and unmaps their memory. */
SCHED_API int32_t sched_vmm_flush(int32_t device);

/** Unmaps the memory of pending decommits whose stream work is already done; never waits. */
SCHED_API int32_t sched_vmm_reap(int32_t device);

/** Bytes in committed blocks, and bytes of physical memory mapped under them. */
SCHED_API int32_t sched_vmm_usage(int32_t device, uint64_t *out_committed, uint64_t *out_mapped);

/* ---------------------------------------------------------- fault injection */

typedef enum sched_fault {
  SCHED_FAULT_ALLOC = 1,  /* device allocations fail with SCHED_ERR_OUT_OF_MEMORY */
  SCHED_FAULT_COPY = 2,   /* copies and memsets fail to queue with SCHED_ERR_BACKEND */
  SCHED_FAULT_STREAM = 3  /* stream notifications complete with SCHED_ERR_BACKEND, as a failed stream would */
} sched_fault;

/**
 * Host backend only (for tests): makes the next `count` calls of `kind`
 * fail; 0 disarms. SCHED_ERR_UNSUPPORTED on CUDA. Reset by sched_init.
 */
SCHED_API int32_t sched_host_inject_fault(int32_t kind, uint32_t count);

/* -------------------------------------------------------------- completions */

/**
 * For C callers (JavaScript uses sched_completions_wait instead, so that no
 * libsched thread ever calls into an isolate that may be gone).
 * Installs the function the notifier thread calls when completions are
 * waiting to be drained (one call per batch: it is not called again until
 * sched_completions_drain has emptied the queue). The notifier is process
 * wide and outlives sched_shutdown, so fn must stay callable until it is
 * replaced. Installing a function discards completions still queued for the
 * previous one, and if the previous one never returned from a call (its
 * JavaScript isolate is gone), a fresh notifier thread takes over. Passing
 * NULL stops notifications.
 */
SCHED_API int32_t sched_notifier_install(sched_notify_fn fn);

/**
 * Asks for token to complete when all work queued on stream so far is done.
 * Never blocks. The token comes back through sched_completions_drain.
 */
SCHED_API int32_t sched_stream_notify(uint32_t stream, uint32_t token);

/** Asks for token to complete when the event's latest record completes. */
SCHED_API int32_t sched_event_notify(uint32_t event, uint32_t token);

/**
 * Moves up to capacity completed tokens (with their statuses) into the
 * arrays and returns how many were moved. Never blocks.
 */
SCHED_API uint32_t sched_completions_drain(uint32_t *tokens, int32_t *statuses, uint32_t capacity);

/**
 * Blocks until completions are queued, sched_completions_wake is called, or
 * the process exits; returns how many are queued (0 when woken without
 * any). Does not drain. Meant to be called off the JavaScript thread (a
 * nonblocking FFI call), so that no libsched thread ever calls into an
 * isolate: a dead isolate's pending wait is only a parked thread.
 */
SCHED_API uint32_t sched_completions_wait(void);

/** Makes every pending sched_completions_wait return now. Never blocks for long. */
SCHED_API void sched_completions_wake(void);

/**
 * Live objects per handle table, for leak checks and soak tests: out[0]
 * streams, out[1] events, out[2] pools, out[3] partitions, out[4] device
 * allocations, out[5] pinned host allocations, out[6] pinned host bytes,
 * out[7] device bytes allocated through libsched. Zeros when not
 * initialized. Never blocks for long.
 */
SCHED_API void sched_debug_counts(uint64_t *out, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* GPUSCHED_SCHED_H */
