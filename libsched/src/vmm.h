/*
 * Virtual device memory (VMM): address ranges reserved once, backed by
 * physical memory that is mapped and unmapped underneath them, so a device
 * address stays valid while only its physical memory comes and goes.
 *
 * vmm.c holds everything both backends share (the reservations, the
 * refcounted physical runs, the registry of committed blocks that copies
 * are checked against, and the stream-ordered release of physical memory);
 * a backend supplies only the physical operations below.
 */
#ifndef GPUSCHED_VMM_H
#define GPUSCHED_VMM_H

#include <stdint.h>

#include "registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every call acts on the device the dispatch layer made the acting one
 * (sched_acting_device): vmm.c sets it to the call's device, or to a run's
 * own device when it unmaps or uncharges that run. */
typedef struct vmm_phys_ops {
  /* Smallest unit physical memory is mapped in. */
  int32_t (*granularity)(uint64_t *out_bytes);
  /* Reserves address space only (bytes and alignment: multiples of the granularity). */
  int32_t (*reserve)(uint64_t bytes, void **out_base);
  void (*unreserve)(void *base, uint64_t bytes);
  /* Backs [addr, addr + bytes) with new physical memory; OUT_OF_MEMORY when the device has none. */
  int32_t (*map)(void *addr, uint64_t bytes, uint64_t *out_handle);
  /* Unmaps and frees what map made. Called only once no work uses the range. */
  void (*unmap)(void *addr, uint64_t bytes, uint64_t handle);
  /* Optional: charges or uncharges committed block bytes (the host's simulated capacity). */
  int32_t (*charge)(uint64_t bytes);
  void (*uncharge)(uint64_t bytes);
} vmm_phys_ops;

const vmm_phys_ops *host_vmm_ops(void);
/* Defined only when the CUDA backend is built (weak reference in vmm.c). */
const vmm_phys_ops *cuda_vmm_ops(void);

/** Finds a committed block by its base pointer (for copy range checks); 0 when found. */
int vmm_find_block(const void *ptr, allocation *out);

/** Releases every mapping and reservation. Called by sched_shutdown once streams are idle. */
void vmm_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* GPUSCHED_VMM_H */
