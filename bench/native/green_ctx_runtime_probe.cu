// Where does host memory go when green contexts come and go while the CUDA runtime API works on their
// streams? (issue 10 item 17: libsched's partition create/delete keeps about 3.3 MiB per cycle; a
// driver-only loop keeps 0.6 KiB.) Each variant makes and destroys one green context per cycle and
// adds one more runtime-API step on a stream in it; RSS is printed per variant.
// Build (here or on the GPU machine):
//   nvcc -O1 -cudart static -gencode arch=compute_90,code=sm_90 bench/native/green_ctx_runtime_probe.cu -o /tmp/grp
// Run: /tmp/grp <cycles> [first variant] [last variant] [mode]
// mode "live": keeps <cycles> green contexts (distinct sets) alive, prints host and device memory each;
// mode "driver": no CUDA runtime call at all (libcuda through dlopen, variant 0 only);
// mode "primary": the same plus a retained primary context; mode "same": always the same SM set.
#include <cuda.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
  fclose(f);
  return v;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

__global__ void touch(int *p) {
  if (p != NULL) p[threadIdx.x] += 1;
}

#define LOAD(var, name)                                                                              \
  do {                                                                                               \
    cudaDriverEntryPointQueryResult q;                                                               \
    if (cudaGetDriverEntryPointByVersion(name, (void **)&var, 13000, cudaEnableDefault, &q) != 0 || \
        var == NULL) {                                                                               \
      printf("no %s\n", name);                                                                       \
      return 1;                                                                                      \
    }                                                                                                \
  } while (0)

static const char *variants[] = {
    "green context only",
    "+ cuGreenCtxStreamCreate / cudaStreamDestroy",
    "+ cudaEventRecord of a primary-context event on it",
    "+ a kernel launch on it",
    "+ cudaMemcpyAsync device-to-device on it",
    "+ cudaStreamWaitEvent of a primary stream on its event",
    "kernel launch, then cuCtxSynchronize-free retire (event + later destroy)",
};

/* Driver entry points through the CUDA runtime, and the device's SMs split into groups of 8. */
struct probe_driver {
  decltype(&cuDeviceGet) device_get;
  decltype(&cuDeviceGetDevResource) get_resource;
  decltype(&cuDevSmResourceSplitByCount) split;
  decltype(&cuDevResourceGenerateDesc) gen_desc;
  decltype(&cuGreenCtxCreate) gc_create;
  decltype(&cuGreenCtxDestroy) gc_destroy;
  decltype(&cuGreenCtxStreamCreate) gc_stream;
  CUdevice dev;
  CUdevResource groups[32];
  unsigned n;
};

/* 0 when the runtime, every entry point and the split are there; else a nonzero exit code. */
static int probe_setup(probe_driver *d) {
  if (cudaFree(0) != cudaSuccess) {
    printf("no CUDA device\n");
    return 1;
  }
  LOAD(d->device_get, "cuDeviceGet");
  LOAD(d->get_resource, "cuDeviceGetDevResource");
  LOAD(d->split, "cuDevSmResourceSplitByCount");
  LOAD(d->gen_desc, "cuDevResourceGenerateDesc");
  LOAD(d->gc_create, "cuGreenCtxCreate");
  LOAD(d->gc_destroy, "cuGreenCtxDestroy");
  LOAD(d->gc_stream, "cuGreenCtxStreamCreate");
  CUdevResource sm, rest;
  d->n = 32;
  if (d->device_get(&d->dev, 0) || d->get_resource(d->dev, &sm, CU_DEV_RESOURCE_TYPE_SM) ||
      d->split(d->groups, &d->n, &sm, &rest, CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING, 8)) {
    printf("split failed\n");
    return 2;
  }
  return 0;
}

static int driver_only(int cycles, bool primary) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  if (h == NULL) return 1;
#define SYM(var, name) decltype(&name) var = (decltype(&name))dlsym(h, #name)
  SYM(init, cuInit);
  SYM(device_get, cuDeviceGet);
  SYM(retain, cuDevicePrimaryCtxRetain);
  SYM(get_resource, cuDeviceGetDevResource);
  SYM(split, cuDevSmResourceSplitByCount);
  SYM(gen_desc, cuDevResourceGenerateDesc);
  SYM(gc_create, cuGreenCtxCreate);
  SYM(gc_destroy, cuGreenCtxDestroy);
  CUdevice dev;
  CUdevResource sm, groups[32], rest;
  unsigned n = 32;
  if (init(0) || device_get(&dev, 0)) return 2;
  CUcontext pctx;
  if (primary && retain(&pctx, dev)) return 3;
  if (get_resource(dev, &sm, CU_DEV_RESOURCE_TYPE_SM) ||
      split(groups, &n, &sm, &rest, CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING, 8))
    return 4;
  long before = rss_kib(), mid = 0;
  for (int i = 0; i < cycles; i++) {
    if (i == cycles / 2) mid = rss_kib();
    CUdevResourceDesc desc;
    CUgreenCtx g;
    unsigned k = 1 + (unsigned)i % (n - 1);
    if (gen_desc(&desc, groups, k) || gc_create(&g, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM)) return 5;
    if (gc_destroy(g)) return 6;
  }
  long after = rss_kib();
  printf("driver only%s: %d cycles: RSS %ld -> %ld KiB, second half %.1f KiB/cycle\n",
         primary ? " with a retained primary context" : "", cycles, before, after,
         (after - mid) / (double)(cycles - cycles / 2));
  return 0;
}

/* One green context for the whole run; a stream made, used and destroyed in it per cycle. */
static int streams_in_one(int cycles) {
  probe_driver d;
  if (int rc = probe_setup(&d)) return rc;
  CUdevResourceDesc desc;
  CUgreenCtx g;
  if (d.gen_desc(&desc, d.groups, 4) || d.gc_create(&g, desc, d.dev, CU_GREEN_CTX_DEFAULT_STREAM)) return 2;
  int *buf = NULL;
  cudaMalloc(&buf, 4096);
  size_t free0, free1, total;
  cudaMemGetInfo(&free0, &total);
  long rss0 = rss_kib();
  for (int i = 0; i < cycles; i++) {
    CUstream s;
    if (d.gc_stream(&s, g, CU_STREAM_NON_BLOCKING, 0)) return 3;
    touch<<<1, 32, 0, (cudaStream_t)s>>>(buf);
    cudaStreamSynchronize((cudaStream_t)s);
    cudaStreamDestroy((cudaStream_t)s);
  }
  cudaMemGetInfo(&free1, &total);
  printf("streams in one green context: %d made and destroyed: RSS %+.1f KiB each, device memory -%.1f KiB each\n",
         cycles, (rss_kib() - rss0) / (double)cycles, ((double)free0 - (double)free1) / 1024.0 / cycles);
  cudaStream_t plain;
  cudaMemGetInfo(&free0, &total);
  rss0 = rss_kib();
  for (int i = 0; i < cycles; i++) {
    cudaStreamCreateWithFlags(&plain, cudaStreamNonBlocking);
    touch<<<1, 32, 0, plain>>>(buf);
    cudaStreamSynchronize(plain);
    cudaStreamDestroy(plain);
  }
  cudaMemGetInfo(&free1, &total);
  printf("plain streams: %d made and destroyed: RSS %+.1f KiB each, device memory -%.1f KiB each\n", cycles,
         (rss_kib() - rss0) / (double)cycles, ((double)free0 - (double)free1) / 1024.0 / cycles);
  return 0;
}

static int live(int count) {
  probe_driver d;
  if (int rc = probe_setup(&d)) return rc;
  CUgreenCtx *made = (CUgreenCtx *)calloc(count, sizeof *made);
  size_t free0, free1, total;
  cudaMemGetInfo(&free0, &total);
  long rss0 = rss_kib();
  for (int i = 0; i < count; i++) {
    CUdevResourceDesc desc;
    unsigned first = (unsigned)i % d.n, k = 1 + (unsigned)(i / d.n) % (d.n - first);
    if (d.gen_desc(&desc, d.groups + first, k) || d.gc_create(&made[i], desc, d.dev, CU_GREEN_CTX_DEFAULT_STREAM)) return 3;
  }
  cudaMemGetInfo(&free1, &total);
  long rss1 = rss_kib();
  printf("live: %d green contexts alive: RSS +%.1f KiB each, device memory +%.1f KiB each\n", count,
         (rss1 - rss0) / (double)count, (double)(free0 - free1) / 1024.0 / count);
  for (int i = 0; i < count; i++) d.gc_destroy(made[i]);
  cudaMemGetInfo(&free1, &total);
  printf("live: after destroying them: RSS +%ld KiB, device memory +%.1f MiB in all\n", rss_kib() - rss0,
         (double)(free0 - free1) / 1048576.0);
  return 0;
}

int main(int argc, char **argv) {
  int cycles = argc > 1 ? atoi(argv[1]) : 200;
  int first = argc > 2 ? atoi(argv[2]) : 0;
  int last = argc > 3 ? atoi(argv[3]) : (int)(sizeof variants / sizeof *variants) - 1;
  const char *mode = argc > 4 ? argv[4] : "";
  if (strcmp(mode, "driver") == 0) return driver_only(cycles, false);
  if (strcmp(mode, "primary") == 0) return driver_only(cycles, true);
  bool same = strcmp(mode, "same") == 0;
  if (strcmp(mode, "live") == 0) return live(cycles);
  if (strcmp(mode, "streams") == 0) return streams_in_one(cycles);
  probe_driver d;
  if (int rc = probe_setup(&d)) return rc;
  int *buf = NULL, *buf2 = NULL;
  cudaMalloc(&buf, 1 << 20);
  cudaMalloc(&buf2, 1 << 20);
  cudaStream_t primary;
  cudaStreamCreateWithFlags(&primary, cudaStreamNonBlocking);
  printf("groups %u, start RSS %ld KiB\n", d.n, rss_kib());
  fflush(stdout);
  for (int v = first; v <= last; v++) {
    long before = rss_kib();
    long mid = 0;
    size_t free_before, free_after, total;
    cudaMemGetInfo(&free_before, &total);
    double t0 = now_ms();
    for (int i = 0; i < cycles; i++) {
      if (i == cycles / 2) mid = rss_kib();
      CUdevResourceDesc desc;
      CUgreenCtx g;
      unsigned k = same ? 4 : 1 + (unsigned)i % (d.n - 1);
      if (d.gen_desc(&desc, d.groups, k) || d.gc_create(&g, desc, d.dev, CU_GREEN_CTX_DEFAULT_STREAM)) {
        printf("create failed\n");
        return 3;
      }
      if (v >= 1) {
        CUstream s;
        if (d.gc_stream(&s, g, CU_STREAM_NON_BLOCKING, 0)) {
          printf("stream failed\n");
          return 4;
        }
        cudaEvent_t e;
        cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
        if (v >= 3) touch<<<1, 32, 0, (cudaStream_t)s>>>(buf);
        if (v >= 4) cudaMemcpyAsync(buf2, buf, 4096, cudaMemcpyDeviceToDevice, (cudaStream_t)s);
        if (v >= 2) cudaEventRecord(e, (cudaStream_t)s);
        if (v >= 5) cudaStreamWaitEvent(primary, e, 0);
        if (v == 6) {
          cudaEventSynchronize(e);
        } else {
          cudaStreamSynchronize((cudaStream_t)s);
        }
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) {
          printf("cycle %d: %s\n", i, cudaGetErrorString(err));
          return 5;
        }
        cudaEventDestroy(e);
        cudaStreamDestroy((cudaStream_t)s);
      }
      if (d.gc_destroy(g)) {
        printf("destroy failed\n");
        return 6;
      }
      if (i < 3 || (i + 1) % 100 == 0) {
        printf("  variant %d cycle %d: %.1f ms so far, RSS %ld KiB\n", v, i + 1, now_ms() - t0, rss_kib());
        fflush(stdout);
      }
    }
    long after = rss_kib();
    cudaMemGetInfo(&free_after, &total);
    printf("variant %d (%s): %d cycles in %.0f ms: RSS %ld -> %ld KiB, second half %.1f KiB/cycle; device memory -%.1f KiB/cycle\n", v,
           variants[v], cycles, now_ms() - t0, before, after, (after - mid) / (double)(cycles - cycles / 2),
           ((double)free_before - (double)free_after) / 1024.0 / cycles);
    fflush(stdout);
  }
  return 0;
}
