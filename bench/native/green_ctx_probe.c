// Does the driver give back what a green context takes? Loops cuDevResourceGenerateDesc +
// cuGreenCtxCreate + cuGreenCtxDestroy (and, with a second argument of 1, a stream in it) and prints
// RSS (issue 10 item 17). Build and run on a GPU machine:
//   gcc -O1 -I/usr/local/cuda/include bench/native/green_ctx_probe.c -o /tmp/gp -ldl && /tmp/gp 300 0
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r"); char line[256]; long v = -1;
  while (fgets(line, sizeof line, f)) if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
  fclose(f); return v;
}
#define SYM(f, name) __typeof__(&f) p_##f = (__typeof__(&f))dlsym(h, name); if (!p_##f) { printf("no %s\n", name); return 1; }
int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 300, with_stream = argc > 2 ? atoi(argv[2]) : 0;
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  if (!h) { printf("no libcuda\n"); return 1; }
  SYM(cuInit, "cuInit") SYM(cuDeviceGet, "cuDeviceGet") SYM(cuDeviceGetDevResource, "cuDeviceGetDevResource")
  SYM(cuDevSmResourceSplitByCount, "cuDevSmResourceSplitByCount") SYM(cuDevResourceGenerateDesc, "cuDevResourceGenerateDesc")
  SYM(cuGreenCtxCreate, "cuGreenCtxCreate") SYM(cuGreenCtxDestroy, "cuGreenCtxDestroy")
  SYM(cuGreenCtxStreamCreate, "cuGreenCtxStreamCreate") SYM(cuStreamDestroy, "cuStreamDestroy_v2")
  CUdevice dev; CUdevResource sm, groups[16], rest; unsigned n = 16;
  if (p_cuInit(0) || p_cuDeviceGet(&dev, 0) || p_cuDeviceGetDevResource(dev, &sm, CU_DEV_RESOURCE_TYPE_SM)) return 2;
  if (p_cuDevSmResourceSplitByCount(groups, &n, &sm, &rest, 0, 8)) return 3;
  printf("groups %u, start RSS %ld KiB\n", n, rss_kib());
  for (int flag = 0; flag < 2; flag++) {
    long before = rss_kib();
    for (int i = 0; i < iters; i++) {
      CUdevResourceDesc desc; CUgreenCtx g;
      unsigned k = 1 + (unsigned)i % (n - 1);
      if (p_cuDevResourceGenerateDesc(&desc, groups, k)) return 4;
      if (p_cuGreenCtxCreate(&g, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM)) return 5;
      if (with_stream) { CUstream s; if (p_cuGreenCtxStreamCreate(&s, g, CU_STREAM_NON_BLOCKING, 0)) return 6; p_cuStreamDestroy(s); }
      if (p_cuGreenCtxDestroy(g)) return 7;
    }
    printf("pass %d (streams %d): %d create+destroy: RSS %ld -> %ld KiB (%.1f KiB each)\n", flag, with_stream, iters, before, rss_kib(), (rss_kib() - before) / (double)iters);
  }
  return 0;
}
