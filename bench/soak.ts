/**
 * Soak: millions of mixed operations in one scheduler, asserting that
 * nothing grows: native handles per libsched table, device allocations,
 * pinned staging bytes, RSS, and every context's budget.
 *
 * Each step picks one operation (seeded, so a run can be repeated):
 * `waitEvent(b, recordEvent(a))` (the README's per-token idiom), explicit
 * events created, recorded and destroyed, alloc/free through a context,
 * small write/read round trips (checked), eviction and restore of
 * evictable buffers, and sync and async sessions. Every SAMPLE_EVERY steps
 * it samples the counts; after a warm-up, each sample must stay within a
 * bound of the first one.
 *
 * Run: deno task soak [-- --ops N] [--seconds S] [--seed K]
 * (defaults: 10,000,000 operations, at most 600 s; GPUSCHED_BACKEND=host|cuda
 * forces a backend). Not part of `deno task test`.
 */
import {
  contextSession,
  createContext,
  type DeviceBuffer,
  getContextUsage,
  initialize,
  KB,
  MB,
  QoSPolicy,
  recordEvent,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { type NativeCounts, nativeCounts } from "../src/native/debug_counts.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(Deno.args[i + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`--${name} must be a positive number, got ${Deno.args[i + 1]}`);
  }
  return value;
}

const OPS = flag("ops", 10_000_000);
const SECONDS = flag("seconds", 600);
const SEED = flag("seed", 1);
const SAMPLE_EVERY = 100_000;
const WARMUP_SAMPLES = 3;
/** Growth allowed past the first sample after warm-up. */
const BOUNDS = { handles: 64, rss: 64 * MB, pinned: 8 * MB };

const backendEnv = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" })
    .state === "granted"
  ? Deno.env.get("GPUSCHED_BACKEND")
  : undefined;
const backend = backendEnv === "cuda" || backendEnv === "host" ? backendEnv : "auto";
const sched = initialize({ backend, hostMemory: 1024 * MB, memoryLimit: 1024 * MB });

const llm = createContext("llm", { maxVram: 96 * MB, qos: QoSPolicy.GUARANTEED });
const tts = createContext("tts", { maxVram: 64 * MB, baseVram: 16 * MB, qos: QoSPolicy.BURSTABLE });
const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
const contexts = [llm, tts, bg];
const staging = sched.deviceAt().staging;

let seed = SEED >>> 0 || 1;
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const live: DeviceBuffer[] = [];
const evictable: DeviceBuffer[] = [];
const MAX_LIVE = 256;
const payload = new Uint8Array(4 * KB);
const back = new Uint8Array(4 * KB);
const counts = { events: 0, explicit: 0, alloc: 0, transfer: 0, evict: 0, session: 0 };

for (let i = 0; i < 8; i++) evictable.push(bg.alloc(1 * MB, { evictable: true }));

async function step(i: number): Promise<void> {
  const r = random();
  if (r < 0.5) {
    waitEvent(tts, recordEvent(llm));
    counts.events++;
  } else if (r < 0.6) {
    using ev = sched.createEvent();
    ev.record(llm.stream);
    ev.wait(tts.stream);
    counts.explicit++;
  } else if (r < 0.85) {
    if (live.length >= MAX_LIVE || (live.length > 0 && random() < 0.5)) {
      live.splice(Math.floor(random() * live.length), 1)[0]!.free();
    } else {
      const ctx = contexts[Math.floor(random() * contexts.length)]!;
      live.push(ctx.alloc(256 << Math.floor(random() * 10)));
    }
    counts.alloc++;
  } else if (r < 0.95) {
    await contextSession(tts, async () => {
      const buf = tts.alloc(payload.byteLength);
      payload[0] = i & 0xff;
      await buf.write(payload);
      await buf.read(back);
      if (back[0] !== (i & 0xff)) throw new Error(`step ${i}: read back ${back[0]}`);
      buf.free();
    });
    counts.transfer++;
  } else if (r < 0.98) {
    bg.pool.evict(2 * MB);
    await evictable[Math.floor(random() * evictable.length)]!.resident();
    counts.evict++;
  } else {
    using _session = contextSession(llm);
    counts.session++;
  }
}

interface Sample {
  step: number;
  seconds: number;
  native: NativeCounts;
  rss: number;
  heap: number;
  staging: number;
}

function sample(stepNo: number, start: number): Sample {
  for (const ctx of contexts) {
    const u = getContextUsage(ctx);
    if (u.used > u.max) throw new Error(`${ctx.name} holds ${u.used} bytes over its ${u.max}`);
  }
  return {
    step: stepNo,
    seconds: (performance.now() - start) / 1000,
    native: nativeCounts(),
    rss: Deno.memoryUsage().rss,
    heap: Deno.memoryUsage().heapUsed,
    staging: staging.bytes,
  };
}

function check(first: Sample, s: Sample): void {
  const grew = (what: string, a: number, b: number, bound: number) => {
    if (b - a > bound) throw new Error(`${what} grew from ${a} to ${b} by step ${s.step}`);
  };
  grew("native streams", first.native.streams, s.native.streams, 0);
  grew("native events", first.native.events, s.native.events, BOUNDS.handles);
  grew("native pools", first.native.pools, s.native.pools, 0);
  grew("device allocations", first.native.deviceAllocations, s.native.deviceAllocations, MAX_LIVE);
  grew("pinned bytes", first.native.pinnedBytes, s.native.pinnedBytes, BOUNDS.pinned);
  grew("staging bytes", first.staging, s.staging, BOUNDS.pinned);
  grew("RSS", first.rss, s.rss, BOUNDS.rss);
}

const mib = (n: number) => (n / MB).toFixed(1);
const start = performance.now();
const samples: Sample[] = [];
let done = 0;
for (; done < OPS; done++) {
  await step(done);
  if (done % SAMPLE_EVERY === SAMPLE_EVERY - 1) {
    // Let the streams catch up, as a server between requests would.
    await llm.stream.synchronize();
    await tts.stream.synchronize();
    const s = sample(done + 1, start);
    samples.push(s);
    if (samples.length % 10 === 0) {
      console.log(
        `  step ${s.step}: ${s.seconds.toFixed(0)} s, native events ${s.native.events}, ` +
          `device allocations ${s.native.deviceAllocations}, pinned ${
            mib(s.native.pinnedBytes)
          } MiB, ` +
          `RSS ${mib(s.rss)} MiB, JS heap ${mib(s.heap)} MiB`,
      );
    }
    if (samples.length > WARMUP_SAMPLES) check(samples[WARMUP_SAMPLES]!, s);
    if (s.seconds > SECONDS) {
      done++;
      break;
    }
  }
}
const last = sample(done, start);
const base = samples[Math.min(WARMUP_SAMPLES, samples.length - 1)] ?? last;
check(base, last);
for (const b of live.splice(0)) b.free();

console.log(
  `soak ${sched.backend}: ${done} operations in ${last.seconds.toFixed(1)} s ` +
    `(${(done / last.seconds / 1000).toFixed(0)}k ops/s), seed ${SEED}; mix ${
      JSON.stringify(counts)
    }`,
);
console.log(
  `  from step ${base.step} to ${last.step}: native events ${base.native.events} -> ` +
    `${last.native.events}, streams ${base.native.streams} -> ${last.native.streams}, ` +
    `device allocations ${base.native.deviceAllocations} -> ${last.native.deviceAllocations}, ` +
    `pinned ${mib(base.native.pinnedBytes)} -> ${mib(last.native.pinnedBytes)} MiB, ` +
    `staging ${mib(base.staging)} -> ${mib(last.staging)} MiB, ` +
    `RSS ${mib(base.rss)} -> ${mib(last.rss)} MiB; max events over the run ` +
    `${Math.max(...samples.map((s) => s.native.events))}`,
);
shutdown();
