/**
 * The demo's kernel library, opened the way a user opens their own:
 * `Deno.dlopen` of a shared library whose functions take `stream.handle`
 * and buffer pointers (`buf.ptr`). `libgsdemo.so` is the CUDA build of
 * cuda/demo_kernels.cu, `libgsdemo_host.so` the host build of
 * cuda/demo_kernels_host.c; both have the same C signatures.
 *
 * @module
 */
import type { BackendName, Stream } from "../../mod.ts";
import { BUILD_COMMAND, localLibraryPath } from "../../src/native/loader.ts";
import { formatBytes } from "../../src/units.ts";

const symbols = {
  gsd_matvec: {
    // (void *stream, float *y, const float *w, const float *x, uint32_t rows, uint32_t cols)
    parameters: ["pointer", "pointer", "pointer", "pointer", "u32", "u32"],
    result: "i32",
  },
  gsd_bias_act: {
    // (void *stream, float *y, const float *bias, uint32_t rows, uint32_t cols, int32_t act)
    parameters: ["pointer", "pointer", "pointer", "u32", "u32", "i32"],
    result: "i32",
  },
  gsd_add: {
    // (void *stream, float *y, const float *x, uint64_t n)
    parameters: ["pointer", "pointer", "pointer", "u64"],
    result: "i32",
  },
  gsd_softmax_rows: {
    // (void *stream, float *x, uint32_t rows, uint32_t cols)
    parameters: ["pointer", "pointer", "u32", "u32"],
    result: "i32",
  },
  gsd_argmax_rows: {
    // (void *stream, uint32_t *out, const float *x, uint32_t rows, uint32_t cols)
    parameters: ["pointer", "pointer", "pointer", "u32", "u32"],
    result: "i32",
  },
  gsd_embed: {
    // (void *stream, float *out, const float *table, const uint32_t *token,
    //  uint32_t vocab, uint32_t dim, uint32_t position)
    parameters: ["pointer", "pointer", "pointer", "pointer", "u32", "u32", "u32"],
    result: "i32",
  },
  gsd_im2col: {
    // (void *stream, float *out, const float *in, uint32_t batch, uint32_t height,
    //  uint32_t width, uint32_t channels, uint32_t stride)
    parameters: ["pointer", "pointer", "pointer", "u32", "u32", "u32", "u32", "u32"],
    result: "i32",
  },
  gsd_matmul: {
    // (void *stream, float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k)
    parameters: ["pointer", "pointer", "pointer", "pointer", "u32", "u32", "u32"],
    result: "i32",
  },
  gsd_mean_rows: {
    // (void *stream, float *out, const float *in, uint32_t groups, uint32_t rows_per_group,
    //  uint32_t cols)
    parameters: ["pointer", "pointer", "pointer", "u32", "u32", "u32"],
    result: "i32",
  },
  gsd_synth: {
    // (void *stream, float *out, const uint8_t *text, uint32_t first_char, uint32_t n_chars,
    //  uint32_t samples_per_char, uint32_t sample_rate)
    parameters: ["pointer", "pointer", "pointer", "u32", "u32", "u32", "u32"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** Device memory a kernel reads or writes: a `DeviceBuffer` or a `PoolBlock`. */
export interface KernelBuffer {
  /** Device pointer (reading it makes an evicted buffer resident again). */
  readonly ptr: Deno.PointerObject;
  /** Bytes. */
  readonly size: number;
}

/** Activations of `bias_act`. */
export const Activation = { NONE: 0, RELU: 1, TANH: 2 } as const;

/** An activation of `bias_act`. */
export type Activation = (typeof Activation)[keyof typeof Activation];

/** Output side of the 3x3, padding 1 convolution of `im2col`. */
export function outSide(side: number, stride: number): number {
  return Math.ceil(side / stride);
}

const F32 = 4;
const opened = new Map<BackendName, Symbols>();

/**
 * The demo kernels of one backend. Each method queues its kernel on
 * `stream` (reading `stream.handle` at each launch, as partitions may
 * change it) and checks that the buffers are large enough, since a kernel
 * writing past a buffer corrupts memory instead of failing.
 */
export class DemoKernels {
  /** The backend whose library this is. */
  readonly backend: BackendName;
  #lib: Symbols;

  /**
   * Opens the library of `backend` (once per process).
   *
   * @throws {Error} when it is not built, saying how to build it
   */
  constructor(backend: BackendName) {
    this.backend = backend;
    let lib = opened.get(backend);
    if (lib === undefined) {
      const path = localLibraryPath(backend === "cuda" ? "libgsdemo.so" : "libgsdemo_host.so");
      try {
        lib = Deno.dlopen(path, symbols).symbols;
      } catch (cause) {
        throw new Error(
          `Cannot load the demo kernels from ${path}: build them with \`${BUILD_COMMAND}\`` +
            (backend === "cuda" ? " on a machine with the CUDA toolkit" : ""),
          { cause },
        );
      }
      opened.set(backend, lib);
    }
    this.#lib = lib;
  }

  /** y[r] = W[r, :] . x for r < rows (W is rows x cols). */
  matvec(
    stream: Stream,
    y: KernelBuffer,
    w: KernelBuffer,
    x: KernelBuffer,
    rows: number,
    cols: number,
  ): void {
    fits("matvec", { y: [y, rows], w: [w, rows * cols], x: [x, cols] });
    this.#check("gsd_matvec", this.#lib.gsd_matvec(stream.handle, y.ptr, w.ptr, x.ptr, rows, cols));
  }

  /** y[r, c] = act(y[r, c] + bias[c]). */
  biasAct(
    stream: Stream,
    y: KernelBuffer,
    bias: KernelBuffer,
    rows: number,
    cols: number,
    act: Activation,
  ): void {
    fits("biasAct", { y: [y, rows * cols], bias: [bias, cols] });
    this.#check(
      "gsd_bias_act",
      this.#lib.gsd_bias_act(stream.handle, y.ptr, bias.ptr, rows, cols, act),
    );
  }

  /** y[i] += x[i] for i < n. */
  add(stream: Stream, y: KernelBuffer, x: KernelBuffer, n: number): void {
    fits("add", { y: [y, n], x: [x, n] });
    this.#check("gsd_add", this.#lib.gsd_add(stream.handle, y.ptr, x.ptr, BigInt(n)));
  }

  /** Softmax of each row of x, in place. */
  softmaxRows(stream: Stream, x: KernelBuffer, rows: number, cols: number): void {
    fits("softmaxRows", { x: [x, rows * cols] });
    this.#check("gsd_softmax_rows", this.#lib.gsd_softmax_rows(stream.handle, x.ptr, rows, cols));
  }

  /** out[r] (u32) = index of the largest value of row r, the first on ties. */
  argmaxRows(stream: Stream, out: KernelBuffer, x: KernelBuffer, rows: number, cols: number): void {
    fits("argmaxRows", { out: [out, rows], x: [x, rows * cols] });
    this.#check(
      "gsd_argmax_rows",
      this.#lib.gsd_argmax_rows(stream.handle, out.ptr, x.ptr, rows, cols),
    );
  }

  /**
   * out = table[token % vocab] + a sinusoidal encoding of `position`, where
   * `token` (u32) is read on the device: a decode step needs no upload.
   */
  embed(
    stream: Stream,
    out: KernelBuffer,
    table: KernelBuffer,
    token: KernelBuffer,
    vocab: number,
    dim: number,
    position: number,
  ): void {
    fits("embed", { out: [out, dim], table: [table, vocab * dim], token: [token, 1] });
    this.#check(
      "gsd_embed",
      this.#lib.gsd_embed(stream.handle, out.ptr, table.ptr, token.ptr, vocab, dim, position),
    );
  }

  /**
   * The im2col matrix of `batch` NHWC images for a 3x3 convolution with
   * padding 1: `batch * oh * ow` rows of `9 * channels` (oh = ceil(height / stride)).
   */
  im2col(
    stream: Stream,
    out: KernelBuffer,
    input: KernelBuffer,
    batch: number,
    height: number,
    width: number,
    channels: number,
    stride: number,
  ): void {
    const rows = batch * outSide(height, stride) * outSide(width, stride);
    fits("im2col", {
      out: [out, rows * 9 * channels],
      input: [input, batch * height * width * channels],
    });
    this.#check(
      "gsd_im2col",
      this.#lib.gsd_im2col(
        stream.handle,
        out.ptr,
        input.ptr,
        batch,
        height,
        width,
        channels,
        stride,
      ),
    );
  }

  /** C[m, n] = A[m, k] B[k, n] (shared-memory tiles on CUDA). */
  matmul(
    stream: Stream,
    c: KernelBuffer,
    a: KernelBuffer,
    b: KernelBuffer,
    m: number,
    n: number,
    k: number,
  ): void {
    fits("matmul", { c: [c, m * n], a: [a, m * k], b: [b, k * n] });
    this.#check("gsd_matmul", this.#lib.gsd_matmul(stream.handle, c.ptr, a.ptr, b.ptr, m, n, k));
  }

  /** out[g, c] = mean of input[g * rowsPerGroup + r, c] over r < rowsPerGroup. */
  meanRows(
    stream: Stream,
    out: KernelBuffer,
    input: KernelBuffer,
    groups: number,
    rowsPerGroup: number,
    cols: number,
  ): void {
    fits("meanRows", { out: [out, groups * cols], input: [input, groups * rowsPerGroup * cols] });
    this.#check(
      "gsd_mean_rows",
      this.#lib.gsd_mean_rows(stream.handle, out.ptr, input.ptr, groups, rowsPerGroup, cols),
    );
  }

  /**
   * Audio of text characters [firstChar, firstChar + chars): samplesPerChar
   * float samples each, into out from sample firstChar * samplesPerChar.
   * `text` holds one byte per character.
   */
  synth(
    stream: Stream,
    out: KernelBuffer,
    text: KernelBuffer,
    firstChar: number,
    chars: number,
    samplesPerChar: number,
    sampleRate: number,
  ): void {
    const end = firstChar + chars;
    if (text.size < end) {
      throw new RangeError(`Kernel synth: text holds ${text.size} characters, needs ${end}`);
    }
    fits("synth", { out: [out, end * samplesPerChar] });
    this.#check(
      "gsd_synth",
      this.#lib.gsd_synth(
        stream.handle,
        out.ptr,
        text.ptr,
        firstChar,
        chars,
        samplesPerChar,
        sampleRate,
      ),
    );
  }

  #check(kernel: string, status: number): void {
    if (status !== 0) {
      const kind = this.backend === "cuda" ? "cudaError_t" : "libsched status";
      throw new Error(`Kernel ${kernel} failed to launch: ${kind} ${status}`);
    }
  }
}

/** Throws unless every buffer holds its count of 4-byte elements. */
function fits(kernel: string, buffers: Record<string, [KernelBuffer, number]>): void {
  for (const [name, [buffer, elements]] of Object.entries(buffers)) {
    if (!Number.isSafeInteger(elements) || elements < 0) {
      throw new RangeError(
        `Kernel ${kernel}: sizes must be non-negative integers, got ${elements} elements for ${name}`,
      );
    }
    if (buffer.size < elements * F32) {
      throw new RangeError(
        `Kernel ${kernel}: ${name} holds ${formatBytes(buffer.size)}, needs ${
          formatBytes(elements * F32)
        }`,
      );
    }
  }
}
