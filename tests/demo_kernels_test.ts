/**
 * The demo's kernels (cuda/demo_kernels.cu and their host versions) compute
 * what a plain TypeScript reference computes, on every backend: float32
 * results within a relative error of 1e-4 of the largest reference value,
 * exact results where nothing is rounded (argmax, im2col).
 */
import assert from "node:assert/strict";
import { createContext, type DeviceBuffer, type ExecutionContext, MB } from "../mod.ts";
import { Activation, DemoKernels, outSide } from "../examples/demo/kernels.ts";
import { backendTest } from "./_helpers.ts";

const TOLERANCE = 1e-4;

function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 31 - 1; // [-1, 1)
  };
}

function randomArray(n: number, seed: number): Float32Array {
  const next = random(seed);
  return Float32Array.from({ length: n }, next);
}

async function upload(ctx: ExecutionContext, data: Float32Array | Uint32Array | Uint8Array) {
  const buf = ctx.alloc(Math.max(4, data.byteLength));
  await buf.write(data);
  return buf;
}

async function download(buf: DeviceBuffer, n: number): Promise<Float32Array> {
  const out = new Float32Array(n);
  await buf.read(out); // ordered after the kernel on the context's stream
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i]! - expected[i]!) / (scale || 1);
    assert.ok(
      error <= TOLERANCE,
      `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (relative error ${error})`,
    );
  }
}

function setup(sched: { backend: "cuda" | "host" }): { ctx: ExecutionContext; k: DemoKernels } {
  return { ctx: createContext("kernels", { maxVram: 64 * MB }), k: new DemoKernels(sched.backend) };
}

backendTest("demo kernel matvec multiplies a matrix by a vector", async (sched) => {
  const { ctx, k } = setup(sched);
  const rows = 37, cols = 300;
  const w = randomArray(rows * cols, 1), x = randomArray(cols, 2);
  const [wb, xb, yb] = [await upload(ctx, w), await upload(ctx, x), ctx.alloc(rows * 4)];
  k.matvec(ctx.stream, yb, wb, xb, rows, cols);
  const expected = Array.from({ length: rows }, (_, r) => {
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += w[r * cols + c]! * x[c]!;
    return sum;
  });
  assertClose(await download(yb, rows), expected, "y");
});

backendTest(
  "demo kernel bias_act adds a bias per column and applies the activation",
  async (sched) => {
    const { ctx, k } = setup(sched);
    const rows = 5, cols = 70;
    const bias = randomArray(cols, 4);
    const acts = [
      [Activation.NONE, (v: number) => v],
      [Activation.RELU, (v: number) => Math.max(0, v)],
      [Activation.TANH, Math.tanh],
    ] as const;
    for (const [act, f] of acts) {
      const y = randomArray(rows * cols, 3 + act);
      const [yb, bb] = [await upload(ctx, y), await upload(ctx, bias)];
      k.biasAct(ctx.stream, yb, bb, rows, cols, act);
      const expected = Array.from(y, (v, i) => f(v + bias[i % cols]!));
      assertClose(await download(yb, rows * cols), expected, `activation ${act}`);
    }
  },
);

backendTest("demo kernel add adds one vector to another", async (sched) => {
  const { ctx, k } = setup(sched);
  const n = 1000;
  const y = randomArray(n, 5), x = randomArray(n, 6);
  const [yb, xb] = [await upload(ctx, y), await upload(ctx, x)];
  k.add(ctx.stream, yb, xb, n);
  assertClose(await download(yb, n), Array.from(y, (v, i) => v + x[i]!), "y");
});

backendTest("demo kernel softmax_rows normalizes each row in place", async (sched) => {
  const { ctx, k } = setup(sched);
  const rows = 3, cols = 500;
  const x = randomArray(rows * cols, 7).map((v) => v * 8);
  const xb = await upload(ctx, x);
  k.softmaxRows(ctx.stream, xb, rows, cols);
  const expected: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    expected.push(...e.map((v) => v / sum));
  }
  assertClose(await download(xb, rows * cols), expected, "softmax");
});

backendTest("demo kernel argmax_rows finds each row's largest value", async (sched) => {
  const { ctx, k } = setup(sched);
  const rows = 6, cols = 1000;
  const x = randomArray(rows * cols, 8);
  const winners = [0, 999, 512, 3, 700, 255];
  winners.forEach((c, r) => (x[r * cols + c] = 2)); // well above the rest, in [-1, 1)
  const [xb, out] = [await upload(ctx, x), ctx.alloc(rows * 4)];
  k.argmaxRows(ctx.stream, out, xb, rows, cols);
  const got = new Uint32Array(rows);
  await out.read(got);
  assert.deepEqual(Array.from(got), winners);
});

backendTest("demo kernel embed gathers the row of a token id held on the device", async (sched) => {
  const { ctx, k } = setup(sched);
  const vocab = 20, dim = 64, position = 13;
  const table = randomArray(vocab * dim, 9);
  const [tb, token, out] = [
    await upload(ctx, table),
    await upload(ctx, new Uint32Array([vocab + 7])),
    ctx.alloc(dim * 4),
  ];
  k.embed(ctx.stream, out, tb, token, vocab, dim, position);
  const expected = Array.from({ length: dim }, (_, j) => {
    const angle = position * Math.exp(-Math.log(10000) * (j & ~1) / dim);
    return table[7 * dim + j]! + (j & 1 ? Math.cos(angle) : Math.sin(angle));
  });
  assertClose(await download(out, dim), expected, "embedding"); // token 27 % 20 = 7
});

backendTest("demo kernel im2col lays out 3x3 patches with zero padding", async (sched) => {
  const { ctx, k } = setup(sched);
  for (const [batch, h, w, c, stride] of [[2, 5, 7, 3, 1], [3, 8, 6, 2, 2]] as const) {
    const input = randomArray(batch * h * w * c, 10);
    const oh = outSide(h, stride), ow = outSide(w, stride);
    const n = batch * oh * ow * 9 * c;
    const [ib, out] = [await upload(ctx, input), ctx.alloc(n * 4)];
    k.im2col(ctx.stream, out, ib, batch, h, w, c, stride);
    const expected: number[] = [];
    for (let b = 0; b < batch; b++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          for (let tap = 0; tap < 9; tap++) {
            const iy = oy * stride + Math.floor(tap / 3) - 1, ix = ox * stride + (tap % 3) - 1;
            for (let ch = 0; ch < c; ch++) {
              const inside = iy >= 0 && ix >= 0 && iy < h && ix < w;
              expected.push(inside ? input[((b * h + iy) * w + ix) * c + ch]! : 0);
            }
          }
        }
      }
    }
    assert.deepEqual(Array.from(await download(out, n)), expected, `stride ${stride}`);
  }
});

backendTest("demo kernel matmul multiplies matrices of sizes off the tile grid", async (sched) => {
  const { ctx, k } = setup(sched);
  const m = 45, n = 19, kk = 33;
  const a = randomArray(m * kk, 11), b = randomArray(kk * n, 12);
  const [ab, bb, cb] = [await upload(ctx, a), await upload(ctx, b), ctx.alloc(m * n * 4)];
  k.matmul(ctx.stream, cb, ab, bb, m, n, kk);
  const expected: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let t = 0; t < kk; t++) sum += a[i * kk + t]! * b[t * n + j]!;
      expected.push(sum);
    }
  }
  assertClose(await download(cb, m * n), expected, "C");
});

backendTest("demo kernel mean_rows averages each group of rows", async (sched) => {
  const { ctx, k } = setup(sched);
  const groups = 4, rowsPerGroup = 50, cols = 9;
  const input = randomArray(groups * rowsPerGroup * cols, 13);
  const [ib, out] = [await upload(ctx, input), ctx.alloc(groups * cols * 4)];
  k.meanRows(ctx.stream, out, ib, groups, rowsPerGroup, cols);
  const expected = Array.from({ length: groups * cols }, (_, i) => {
    const g = Math.floor(i / cols), c = i % cols;
    let sum = 0;
    for (let r = 0; r < rowsPerGroup; r++) sum += input[(g * rowsPerGroup + r) * cols + c]!;
    return sum / rowsPerGroup;
  });
  assertClose(await download(out, groups * cols), expected, "mean");
});

/** The synthesizer's formula (cuda/demo_formulas.h), in doubles. */
function synthSample(ch: number, n: number, spc: number, rate: number, s: number): number {
  const f = Math.fround;
  if (ch >= 65 && ch <= 90) ch += 32;
  if (ch < 97 || ch > 122) return 0;
  const letter = ch - 97;
  const f0 = 110 + 10 * (letter % 8);
  const formants: Record<string, [number, number]> = {
    a: [730, 1090],
    e: [530, 1840],
    i: [270, 2290],
    o: [570, 840],
    u: [300, 870],
    y: [300, 2000],
  };
  const vowel = formants[String.fromCharCode(ch)];
  const [f1, f2] = vowel ?? [250 + 37 * letter, 1200 + 91 * letter];
  const resonance = (freq: number, center: number, width: number) =>
    1 / (1 + ((freq - center) / width) ** 2);
  let voiced = 0, norm = 0;
  for (let h = 1; h <= 24 && h * f0 * 2 < rate; h++) {
    const gain = resonance(h * f0, f1, 90) + 0.6 * resonance(h * f0, f2, 120);
    voiced += gain * Math.sin(2 * Math.PI * ((h * f0 * n) % rate) / rate);
    norm += gain;
  }
  const u = f(n / spc);
  let value = voiced / norm;
  if (!vowel) value = 0.7 * value + noise(s) * (u < f(0.35) ? 0.6 : 0.15);
  const envelope = u < f(0.1)
    ? u / 0.1
    : u < f(0.25)
    ? 1 - 0.3 * (u - 0.1) / 0.15
    : u < f(0.8)
    ? 0.7
    : 0.7 * (1 - u) / 0.2;
  return 0.5 * envelope * value;
}

function noise(x: number): number {
  x >>>= 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return (x >>> 8) * (2 / 16777216) - 1;
}

backendTest("demo kernel synth writes a formant waveform per character", async (sched) => {
  const { ctx, k } = setup(sched);
  const text = new TextEncoder().encode("Hi, a quick TEST: xyz!");
  const spc = 300, rate = 8000, first = 2, chars = text.length - 3;
  const [tb, out] = [await upload(ctx, text), ctx.alloc(text.length * spc * 4)];
  await out.write(new Float32Array(text.length * spc).fill(9)); // untouched outside the range
  k.synth(ctx.stream, out, tb, first, chars, spc, rate);
  const got = await download(out, text.length * spc);
  const expected = Array.from(got, (_, s) => {
    const c = Math.floor(s / spc);
    if (c < first || c >= first + chars) return 9;
    return synthSample(text[c]!, s % spc, spc, rate, s);
  });
  const inRange = (a: ArrayLike<number>) => Array.from(a).slice(first * spc, (first + chars) * spc);
  assertClose(inRange(got), inRange(expected), "samples");
  assert.ok(got.slice(0, first * spc).every((v) => v === 9), "samples before the range");
  assert.ok(got.slice((first + chars) * spc).every((v) => v === 9), "samples after the range");
  assert.ok(inRange(got).some((v) => Math.abs(v) > 0.1), "audible");
});

backendTest("demo kernels refuse buffers too small for the sizes given", (sched) => {
  const { ctx, k } = setup(sched);
  const small = ctx.alloc(16);
  assert.throws(
    () => k.matvec(ctx.stream, small, small, small, 2, 4),
    /Kernel matvec: w holds 16 bytes, needs 32/,
  );
});
