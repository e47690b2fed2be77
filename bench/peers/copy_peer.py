"""cudaMemcpyAsync device to device, 256 MiB, timed with CUDA events (CuPy):
the peer figure for bench/copy_bandwidth.ts; with two GPUs also
cudaMemcpyPeerAsync from device 0 to 1. Prints JSON lines."""
import json

import cupy as cp

BYTES = 256 * 1024 * 1024
ROUNDS, WARMUP = 10, 3


def timed(copy, stream):
    times = []
    for i in range(WARMUP + ROUNDS):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        copy()
        end.record(stream)
        end.synchronize()
        if i >= WARMUP:
            times.append(cp.cuda.get_elapsed_time(start, end))
    times.sort()
    return times[len(times) // 2]


with cp.cuda.Device(0):
    stream = cp.cuda.Stream(non_blocking=True)
    src = cp.ones(BYTES, dtype=cp.uint8)
    dst = cp.empty(BYTES, dtype=cp.uint8)
    ms = timed(lambda: cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, BYTES, 3, stream.ptr), stream)
    print(json.dumps({"case": "cupy cudaMemcpyAsync D2D", "bytes": BYTES, "GBps": round(BYTES / ms / 1e6, 1)}))

if cp.cuda.runtime.getDeviceCount() >= 2:
    with cp.cuda.Device(1):
        far = cp.empty(BYTES, dtype=cp.uint8)
    with cp.cuda.Device(0):
        ms = timed(lambda: cp.cuda.runtime.memcpyPeerAsync(far.data.ptr, 1, src.data.ptr, 0, BYTES, stream.ptr), stream)
        print(json.dumps({"case": "cupy cudaMemcpyPeerAsync 0->1", "bytes": BYTES, "GBps": round(BYTES / ms / 1e6, 1)}))
else:
    print(json.dumps({"case": "cupy cudaMemcpyPeerAsync 0->1", "skipped": "one GPU"}))
