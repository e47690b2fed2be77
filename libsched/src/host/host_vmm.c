/*
 * Virtual memory on the host backend: address space reserved with
 * mmap(PROT_NONE), "physical memory" committed with mprotect and given back
 * with madvise(MADV_DONTNEED), so a decommitted range really returns its
 * pages to the system and faults if touched, while its addresses stay
 * reserved. The granularity is the page size.
 *
 * Capacity: committed blocks are charged against the simulated device's
 * capacity by their own size (the simulated device maps in 256-byte units),
 * so the host backend's ledger and its capacity agree byte for byte. Pages
 * are what the operating system really commits underneath.
 */
#define _DEFAULT_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "host.h"
#include "../vmm.h"

#ifdef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE_OR_0 MADV_POPULATE_WRITE
#else
#define MADV_POPULATE_WRITE_OR_0 23
#endif

static int32_t granularity(uint64_t *out_bytes) {
  long page = sysconf(_SC_PAGESIZE);
  *out_bytes = page > 0 ? (uint64_t)page : 4096;
  return SCHED_OK;
}

static int32_t reserve(uint64_t bytes, void **out_base) {
  void *base = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Cannot reserve %llu bytes of address space", (unsigned long long)bytes);
  *out_base = base;
  return SCHED_OK;
}

static void unreserve(void *base, uint64_t bytes) { munmap(base, bytes); }

static int32_t map(void *addr, uint64_t bytes, uint64_t *out_handle) {
  if (mprotect(addr, bytes, PROT_READ | PROT_WRITE) != 0)
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Cannot commit %llu bytes at %p", (unsigned long long)bytes, addr);
  /* Fault the pages in now, in one call, rather than one fault per page in
   * the copies that follow (Linux 5.14+; older kernels fault lazily). */
  if (bytes >= (1u << 20)) (void)madvise(addr, bytes, MADV_POPULATE_WRITE_OR_0);
  *out_handle = 0;
  return SCHED_OK;
}

static void unmap(void *addr, uint64_t bytes, uint64_t handle) {
  (void)handle;
  madvise(addr, bytes, MADV_DONTNEED);
  mprotect(addr, bytes, PROT_NONE);
}

static int32_t charge(uint64_t bytes) {
  if (host_fault_hit(SCHED_FAULT_ALLOC))
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Host device out of memory: injected fault committing %llu bytes",
                      (unsigned long long)bytes);
  int32_t device = sched_acting_device();
  if (host_memory_charge(bytes) != 0)
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY,
                      "Host device %d out of memory: cannot commit %llu bytes, %llu of %llu bytes in use", device,
                      (unsigned long long)bytes, (unsigned long long)host_memory_used(device),
                      (unsigned long long)host_memory_capacity(device));
  return SCHED_OK;
}

static void uncharge(uint64_t bytes) { host_memory_uncharge(bytes); }

const vmm_phys_ops *host_vmm_ops(void) {
  static const vmm_phys_ops ops = {granularity, reserve, unreserve, map, unmap, charge, uncharge};
  return &ops;
}
