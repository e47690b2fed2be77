"""Sleep/wake peer: PyTorch moving the same bytes as bench/sleep_wake.ts.

An 8 GiB CUDA tensor (GPUSCHED_SLEEP_GIB to change) goes to host memory and
back, two ways: `t.to("cpu", non_blocking=True)` / `.to("cuda",
non_blocking=True)` (PyTorch picks the host buffer), and `copy_` into a
preallocated pinned tensor and back. Each way is timed on the host clock to
a torch.cuda.synchronize(); the first round is a warm-up, then the median of
five. The last line is `json: {...}`.

Run: python3 bench/peers/sleep_peer.py
"""

import json
import os
import statistics
import time

ROUNDS = 5


def timed(fn):
    import torch

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, (time.perf_counter() - t0) * 1000


def main():
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(f"json: {json.dumps({'error': f'no torch: {e}'})}")
        return
    gib = int(os.environ.get("GPUSCHED_SLEEP_GIB", "8"))
    n = gib << 30
    x = torch.empty(n, dtype=torch.uint8, device="cuda")
    x.fill_(7)
    gbps = lambda ms: n / (ms / 1000) / 1e9  # noqa: E731
    result = {"device": torch.cuda.get_device_name(), "bytes": n}

    to_d2h, to_h2d = [], []
    for r in range(ROUNDS + 1):
        host, a = timed(lambda: x.to("cpu", non_blocking=True))
        back, b = timed(lambda: host.to("cuda", non_blocking=True))
        del back
        if r > 0:
            to_d2h.append(a)
            to_h2d.append(b)
        del host
    result["toCpuGBps"] = gbps(statistics.median(to_d2h))
    result["toCudaGBps"] = gbps(statistics.median(to_h2d))

    pinned = torch.empty(n, dtype=torch.uint8, pin_memory=True)
    cp_d2h, cp_h2d = [], []
    for r in range(ROUNDS + 1):
        _, a = timed(lambda: pinned.copy_(x, non_blocking=True))
        _, b = timed(lambda: x.copy_(pinned, non_blocking=True))
        if r > 0:
            cp_d2h.append(a)
            cp_h2d.append(b)
    result["pinnedCopyD2hGBps"] = gbps(statistics.median(cp_d2h))
    result["pinnedCopyH2dGBps"] = gbps(statistics.median(cp_h2d))
    print(
        f"torch {gib} GiB: .to(cpu, non_blocking) {result['toCpuGBps']:.1f} GB/s, "
        f".to(cuda, non_blocking) {result['toCudaGBps']:.1f} GB/s; copy_ into pinned "
        f"{result['pinnedCopyD2hGBps']:.1f} GB/s, back {result['pinnedCopyH2dGBps']:.1f} GB/s"
    )
    print(f"json: {json.dumps(result)}")


if __name__ == "__main__":
    main()
