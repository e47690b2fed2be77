"""Fragmentation peer: replays out/bench/frag_trace.json (written by
bench/fragmentation_trace.ts) with PyTorch's allocator and reports peak
memory reserved / peak bytes live. Run it once as is and once with
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True. The last line is `json: {...}`.

Run: python3 bench/peers/fragmentation_peer.py [out/bench/frag_trace.json]
"""

import json
import os
import sys


def main():
    import torch

    path = sys.argv[1] if len(sys.argv) > 1 else "out/bench/frag_trace.json"
    with open(path) as f:
        trace = json.load(f)
    live, sizes = {}, {}
    live_bytes = peak_live = 0
    torch.cuda.reset_peak_memory_stats()
    for op in trace:
        if op[0] == 1:
            live[op[1]] = torch.empty(op[2], dtype=torch.uint8, device="cuda")
            sizes[op[1]] = op[2]
            live_bytes += op[2]
            peak_live = max(peak_live, live_bytes)
        else:
            del live[op[1]]
            live_bytes -= sizes.pop(op[1])
    torch.cuda.synchronize()
    reserved = torch.cuda.max_memory_reserved()
    conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "default")
    result = {"conf": conf, "ops": len(trace), "peakLiveBytes": peak_live, "peakReservedBytes": reserved,
              "reservedOverLive": reserved / peak_live}
    print(f"torch ({conf}): peak live {peak_live / 2**30:.2f} GiB, peak reserved {reserved / 2**30:.2f} GiB "
          f"({reserved / peak_live:.3f}x)")
    print(f"json: {json.dumps(result)}")


if __name__ == "__main__":
    main()
