/*
 * Virtual memory on CUDA: the physical operations of vmm.h with the
 * driver's VMM API (cuMemAddressReserve, cuMemCreate, cuMemMap,
 * cuMemSetAccess, cuMemUnmap, cuMemRelease).
 *
 * libsched never links libcuda (it must load where no driver is), so the
 * driver functions come from cudaGetDriverEntryPointByVersion, loaded at the
 * first use; <cuda.h> supplies types only. Physical memory is pinned device
 * memory of the device the call acts on, mapped read-write for that device
 * and its peers.
 * The stream ordering of unmaps is vmm.c's business: unmap here is called
 * only once no queued work uses the range.
 */
#include <cuda.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "../libsched/src/vmm.h"
#include "cuda_common.h"

#define DRIVER_ABI_VERSION 13000

struct vmm_driver {
  decltype(&cuMemAddressReserve) address_reserve;
  decltype(&cuMemAddressFree) address_free;
  decltype(&cuMemCreate) create;
  decltype(&cuMemRelease) release;
  decltype(&cuMemMap) map;
  decltype(&cuMemUnmap) unmap;
  decltype(&cuMemSetAccess) set_access;
  decltype(&cuMemGetAllocationGranularity) get_granularity;
  decltype(&cuGetErrorString) get_error_string;
};

static vmm_driver drv;
static bool loaded;
static char load_error[200];

static bool load(const char *name, void **fn) {
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  cudaError_t err = cudaGetDriverEntryPointByVersion(name, fn, DRIVER_ABI_VERSION, cudaEnableDefault, &found);
  if (err == cudaSuccess && found == cudaDriverEntryPointSuccess && *fn != NULL) return true;
  if (err != cudaSuccess) (void)cudaGetLastError();
  *fn = NULL;
  snprintf(load_error, sizeof load_error, "the CUDA driver has no %s for CUDA 13.0", name);
  return false;
}

#define LOAD(field, name) load(name, (void **)&drv.field)

/* Called under vmm.c's lock, so no second thread loads at once. */
static int32_t ensure_loaded(void) {
  if (loaded) return SCHED_OK;
  bool ok = LOAD(address_reserve, "cuMemAddressReserve") && LOAD(address_free, "cuMemAddressFree") &&
            LOAD(create, "cuMemCreate") && LOAD(release, "cuMemRelease") && LOAD(map, "cuMemMap") &&
            LOAD(unmap, "cuMemUnmap") && LOAD(set_access, "cuMemSetAccess") &&
            LOAD(get_granularity, "cuMemGetAllocationGranularity") && LOAD(get_error_string, "cuGetErrorString");
  if (!ok) return sched_fail(SCHED_ERR_UNSUPPORTED, "Virtual memory is unavailable: %s", load_error);
  loaded = true;
  return SCHED_OK;
}

static int32_t cu_fail(CUresult r, const char *what, unsigned long long bytes) {
  const char *text = NULL;
  if (drv.get_error_string == NULL || drv.get_error_string(r, &text) != CUDA_SUCCESS) text = "driver error";
  int32_t status = r == CUDA_ERROR_OUT_OF_MEMORY ? SCHED_ERR_OUT_OF_MEMORY
                   : r == CUDA_ERROR_INVALID_VALUE ? SCHED_ERR_INVALID_ARGUMENT
                                                   : SCHED_ERR_BACKEND;
  return sched_fail(status, "%s of %llu bytes failed: %s (CUresult %d)", what, bytes, text, (int)r);
}

static CUmemAllocationProp device_prop(void) {
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = sched_acting_device();
  return prop;
}

static int32_t granularity(uint64_t *out_bytes) {
  int32_t status = ensure_loaded();
  if (status != SCHED_OK) return status;
  BIND_DEVICE();
  CUmemAllocationProp prop = device_prop();
  size_t g = 0;
  CUresult r = drv.get_granularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuMemGetAllocationGranularity", 0);
  *out_bytes = g;
  return SCHED_OK;
}

static int32_t reserve(uint64_t bytes, void **out_base) {
  CUdeviceptr base = 0;
  CUresult r = drv.address_reserve(&base, bytes, 0, 0, 0);
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuMemAddressReserve", bytes);
  *out_base = (void *)base;
  return SCHED_OK;
}

static void unreserve(void *base, uint64_t bytes) { (void)drv.address_free((CUdeviceptr)base, bytes); }

static int32_t map(void *addr, uint64_t bytes, uint64_t *out_handle) {
  BIND_DEVICE();
  CUmemAllocationProp prop = device_prop();
  CUmemGenericAllocationHandle handle = 0;
  CUresult r = drv.create(&handle, bytes, &prop, 0);
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuMemCreate", bytes);
  r = drv.map((CUdeviceptr)addr, bytes, 0, handle, 0);
  if (r != CUDA_SUCCESS) {
    drv.release(handle);
    return cu_fail(r, "cuMemMap", bytes);
  }
  /* Read-write for its own device and for every device with peer access
   * to it, so kernels and copies on those reach it directly. */
  int device = sched_acting_device();
  CUmemAccessDesc access[SCHED_MAX_DEVICES] = {};
  size_t n = 0;
  for (int d = 0; d < g_cuda.count; d++) {
    if (d != device && !g_cuda.peer[d][device]) continue;
    access[n].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access[n].location.id = d;
    access[n].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    n++;
  }
  r = drv.set_access((CUdeviceptr)addr, bytes, access, n);
  if (r != CUDA_SUCCESS) {
    drv.unmap((CUdeviceptr)addr, bytes);
    drv.release(handle);
    return cu_fail(r, "cuMemSetAccess", bytes);
  }
  *out_handle = (uint64_t)handle;
  return SCHED_OK;
}

static void unmap(void *addr, uint64_t bytes, uint64_t handle) {
  (void)drv.unmap((CUdeviceptr)addr, bytes);
  (void)drv.release((CUmemGenericAllocationHandle)handle);
}

extern "C" const vmm_phys_ops *cuda_vmm_ops(void) {
  static const vmm_phys_ops ops = {granularity, reserve, unreserve, map, unmap, NULL, NULL};
  return &ops;
}
