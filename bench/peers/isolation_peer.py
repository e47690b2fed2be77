"""Isolation peer: the experiment of bench/partition_latency.ts done the way a
PyTorch user would, with stream priorities (`torch.cuda.Stream(priority=...)`).

Victim: the same kernel as cuda/kernels.cu's gs_spin_ns (one warp per block,
each block spinning on %globaltimer), built with CuPy's RawKernel, with one
block per SM x 100 us, launched on a PyTorch stream at the greatest priority
and timed on the GPU by CUDA events recorded around it. Flood: two streams at
the least priority, each kept three kernels deep, of 32 blocks per SM x 2 ms.
20 warm-up then 400 samples, alone and under the flood.

Run: python3 bench/peers/isolation_peer.py (bench/gpu.ts runs it). The last
line is `json: {...}`, or `json: {"error": ...}` where it cannot run.
"""

import collections
import json
import math
import sys
import time

VICTIM_NS = 100_000
FLOOD_NS = 2_000_000
FLOOD_DEPTH = 3
FLOOD_STREAMS = 2
WARMUP = 20
SAMPLES = 400

SOURCE = r"""
extern "C" __global__ void spin_ns(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}
"""


def summarize(us):
    s = sorted(us)
    rank = lambda p: s[max(0, math.ceil(p / 100 * len(s)) - 1)]  # noqa: E731
    return {"p50": rank(50), "p99": rank(99), "mean": sum(s) / len(s), "max": s[-1]}


def main():
    import cupy
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    props = torch.cuda.get_device_properties(0)
    sms = props.multi_processor_count
    kernel = cupy.RawKernel(SOURCE, "spin_ns")

    def launch(stream, ns, blocks):
        # CuPy launches on the PyTorch stream's handle, so the priority is PyTorch's.
        with cupy.cuda.ExternalStream(stream.cuda_stream):
            kernel((blocks,), (32,), (cupy.uint64(ns),))

    victim = torch.cuda.Stream(priority=-5)  # PyTorch clamps to the device's greatest
    floods = [torch.cuda.Stream(priority=0) for _ in range(FLOOD_STREAMS)]
    pending = [collections.deque() for _ in floods]

    def top_up():
        # Keeps each flood stream FLOOD_DEPTH kernels deep, between victim samples.
        for stream, queue in zip(floods, pending):
            while queue and queue[0].query():
                queue.popleft()
            while len(queue) < FLOOD_DEPTH:
                launch(stream, FLOOD_NS, 32 * sms)
                ev = torch.cuda.Event()
                ev.record(stream)
                queue.append(ev)

    def measure(flooded):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        us = []
        for i in range(WARMUP + SAMPLES):
            if flooded:
                top_up()
            start.record(victim)
            launch(victim, VICTIM_NS, sms)
            end.record(victim)
            end.synchronize()
            if i >= WARMUP:
                us.append(start.elapsed_time(end) * 1000)
        return summarize(us)

    alone = measure(False)
    top_up()
    time.sleep(0.02)  # let the flood fill the device
    under = measure(True)
    torch.cuda.synchronize()
    return {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cupy": cupy.__version__,
        "smCount": sms,
        "victimPriority": victim.priority,
        "floodPriority": floods[0].priority,
        "victim": f"{sms} blocks x {VICTIM_NS // 1000} us",
        "flood": f"{FLOOD_STREAMS} streams x {FLOOD_DEPTH} deep, {32 * sms} blocks x "
        f"{FLOOD_NS // 1_000_000} ms",
        "alone": alone,
        "underFlood": under,
        "p99Ratio": under["p99"] / alone["p99"],
    }


if __name__ == "__main__":
    try:
        result = main()
    except Exception as e:  # a missing framework or GPU is a result, not a crash
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result, indent=1), file=sys.stderr)
    print("json: " + json.dumps(result))
