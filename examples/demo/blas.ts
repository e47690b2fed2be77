/**
 * The demo's matrix products: cuBLAS (`@gpusched/core/cublas`) on CUDA,
 * the demo kernels' CPU twins on the host backend. Row-major fp32, as the
 * other demo kernels are.
 *
 * @module
 */

import type { DeviceBuffer, ExecutionContext } from "../../mod.ts";
import { Cublas } from "../../src/cublas/mod.ts";
import { MB } from "../../src/units.ts";
import type { DemoKernels } from "./kernels.ts";

/** cuBLAS's workspace per context, from its budget: small, the demo's products are small. */
const WORKSPACE = 4 * MB;

/** Matrix products queued on one context's stream. */
export class MatrixProducts {
  readonly #ctx: ExecutionContext;
  readonly #k: DemoKernels;
  #blas: Cublas | undefined;

  constructor(ctx: ExecutionContext, k: DemoKernels) {
    this.#ctx = ctx;
    this.#k = k;
  }

  /** Whether the products run through cuBLAS. */
  get cublas(): boolean {
    return this.#k.backend === "cuda";
  }

  #handle(): Cublas {
    return this.#blas ??= Cublas.for(this.#ctx, { workspaceBytes: WORKSPACE });
  }

  /** y[r] = W[r, :] . x for r < rows (W row-major, rows x cols). */
  matvec(y: DeviceBuffer, w: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
    if (!this.cublas) return this.#k.matvec(this.#ctx.stream, y, w, x, rows, cols);
    // Row-major W is column-major W^T (cols x rows): y = op(A) x with op = transpose.
    this.#handle().gemm({
      m: rows,
      n: 1,
      k: cols,
      a: w,
      b: x,
      c: y,
      type: "fp32",
      transA: true,
      lda: cols,
      ldb: cols,
      ldc: rows,
    });
  }

  /** C[m, n] = A[m, k] B[k, n], row-major. */
  matmul(c: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, m: number, n: number, k: number): void {
    if (!this.cublas) return this.#k.matmul(this.#ctx.stream, c, a, b, m, n, k);
    // Row-major C is column-major C^T = B^T A^T: B and A swap places, nothing transposed.
    this.#handle().gemm({ m: n, n: m, k, a: b, b: a, c, type: "fp32", lda: n, ldb: k, ldc: n });
  }
}
