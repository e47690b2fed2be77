"""Allocation peers: allocate + free pairs through PyTorch's caching allocator
and CuPy's memory pool, for the sizes bench/pool_bench.ts measures.

Each pair is `torch.empty(n, dtype=torch.uint8, device="cuda")` + `del` (or
`cupy.empty` + `del`): after warm-up both frameworks hand out a cached block,
which is what gpusched's MemoryPool is compared with. Timed with the host
clock over batches of pairs (the pair itself does no device work); the median
over batches of the mean per pair, in nanoseconds.

Run: python3 bench/peers/alloc_peers.py (bench/gpu.ts runs it). The last line
is `json: {...}`; a framework that is missing or has no GPU is reported with
the reason instead of figures.
"""

import json
import statistics
import sys
import time

SIZES = {"4 KiB": 4096, "1 MiB": 1 << 20, "64 MiB": 64 << 20}
WARMUP = 2_000
BATCH = 1_000
BATCHES = 200


def time_pairs(alloc):
    """Median over BATCHES batches of the mean ns per allocate + free pair."""
    for _ in range(WARMUP):
        x = alloc()
        del x
    per_pair = []
    for _ in range(BATCHES):
        t0 = time.perf_counter_ns()
        for _ in range(BATCH):
            x = alloc()
            del x
        per_pair.append((time.perf_counter_ns() - t0) / BATCH)
    per_pair.sort()
    return {
        "median_ns": statistics.median(per_pair),
        "p99_ns": per_pair[min(len(per_pair) - 1, int(0.99 * len(per_pair)))],
        "pairs": BATCH * BATCHES,
    }


def torch_peer():
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    out = {"version": torch.__version__, "device": torch.cuda.get_device_name(0)}
    for label, n in SIZES.items():
        out[label] = time_pairs(lambda n=n: torch.empty(n, dtype=torch.uint8, device="cuda"))
    torch.cuda.synchronize()
    return out


def cupy_peer():
    import cupy

    out = {"version": cupy.__version__}
    for label, n in SIZES.items():
        out[label] = time_pairs(lambda n=n: cupy.empty(n, dtype=cupy.uint8))
    cupy.cuda.Device().synchronize()
    return out


def main():
    result = {"sizes": SIZES, "batch": BATCH, "batches": BATCHES}
    for name, peer in (("pytorch", torch_peer), ("cupy", cupy_peer)):
        try:
            result[name] = peer()
        except Exception as e:  # a missing framework is a result, not a crash
            result[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"{name}: {json.dumps(result[name])}", file=sys.stderr)
    print("json: " + json.dumps(result))


if __name__ == "__main__":
    main()
