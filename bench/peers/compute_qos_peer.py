"""Compute-QoS peer: the experiment of bench/compute_qos.ts done the way a
PyTorch user would, with stream priorities. Victim: a decode step of 8 bf16
GEMMs (16x4096 @ 4096x4096, each with its own weights) on a stream at the
greatest priority, timed by CUDA events around the 8 GEMMs. Flood: 8192^3
bf16 GEMMs on a stream at the least priority, kept 3 deep. Reports the
victim's p50/p99 alone and under the flood, and the flood's GEMMs/s with the
victim idle and stepping back to back.

Run: python3 bench/peers/compute_qos_peer.py (bench/gpu.ts reads it). The
last line is `json: {...}`, or `json: {"error": ...}` where it cannot run.
"""

import json
import time

STEPS = 300
WARMUP = 20
FLOOD_SECONDS = 1.5
FLOOD_QUEUE = 3


def summarize(us):
    s = sorted(us)
    at = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    return {"p50": at(0.5), "p99": at(0.99), "mean": sum(s) / len(s), "n": len(s)}


def main():
    try:
        import torch
    except Exception as e:  # no PyTorch here
        print(f"json: {json.dumps({'error': f'no PyTorch: {e}'})}")
        return
    if not torch.cuda.is_available():
        print(f"json: {json.dumps({'error': 'no CUDA device for PyTorch'})}")
        return
    dev = torch.device("cuda")
    hi = torch.cuda.Stream(priority=-5)
    lo = torch.cuda.Stream(priority=0)
    x = torch.randn(16, 4096, device=dev, dtype=torch.bfloat16)
    ws = [torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16) for _ in range(8)]
    fa = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    fb = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def launch():
        with torch.cuda.stream(hi):
            start.record(hi)
            y = x
            for w in ws:
                y = y @ w
            end.record(hi)

    def finish():
        end.synchronize()
        return start.elapsed_time(end) * 1000.0

    queued = []
    done = [0]

    def top_up():
        keep = []
        for ev in queued:
            if ev.query():
                done[0] += 1
            else:
                keep.append(ev)
        queued[:] = keep
        while len(queued) < FLOOD_QUEUE:
            with torch.cuda.stream(lo):
                torch.mm(fa, fb)
                ev = torch.cuda.Event()
                ev.record(lo)
            queued.append(ev)

    def drain():
        for ev in queued:
            ev.synchronize()
        queued.clear()

    for _ in range(WARMUP):
        launch()
        finish()
    top_up()
    drain()
    alone = []
    for _ in range(STEPS):
        launch()
        alone.append(finish())

    done[0] = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < FLOOD_SECONDS:
        top_up()
        time.sleep(0.0005)
    drain()
    idle_rate = (done[0] + FLOOD_QUEUE) / (time.perf_counter() - t0)

    for _ in range(WARMUP):
        top_up()
        launch()
        finish()
    done[0] = 0
    under = []
    t0 = time.perf_counter()
    while len(under) < STEPS or time.perf_counter() - t0 < FLOOD_SECONDS:
        top_up()
        launch()
        top_up()
        under.append(finish())
    busy_rate = done[0] / (time.perf_counter() - t0)
    drain()
    a, u = summarize(alone), summarize(under)
    result = {
        "alone": a,
        "underFlood": u,
        "p99Ratio": u["p99"] / a["p99"],
        "floodIdleRate": idle_rate,
        "floodBusyRate": busy_rate,
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
    }
    print(
        f"PyTorch priority streams: alone p50/p99 {a['p50']:.1f}/{a['p99']:.1f} us, "
        f"under flood {u['p50']:.1f}/{u['p99']:.1f} us ({result['p99Ratio']:.2f}x); "
        f"flood {idle_rate:.1f}/s idle, {busy_rate:.1f}/s with the victim running"
    )
    print(f"json: {json.dumps(result)}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"json: {json.dumps({'error': repr(e)})}")
