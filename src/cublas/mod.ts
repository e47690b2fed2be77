/**
 * `@gpusched/core/cublas`: cuBLAS GEMMs on gpusched contexts (CUDA backend
 * only). libcublas is found at `GPUSCHED_CUBLAS` (read only with
 * `--allow-env=GPUSCHED_CUBLAS`), then in the CUDA toolkit's library
 * directories, then by the dynamic loader.
 *
 * @example
 * ```ts ignore
 * import { createContext, initialize, MB, QoSPolicy } from "@gpusched/core";
 * import { Cublas } from "@gpusched/core/cublas";
 * initialize({ backend: "cuda" });
 * const ctx = createContext("llm", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
 * const a = ctx.alloc(64 * 64 * 4), b = ctx.alloc(64 * 64 * 4), c = ctx.alloc(64 * 64 * 4);
 * Cublas.for(ctx).gemm({ m: 64, n: 64, k: 64, a, b, c, type: "fp32" });
 * await ctx.stream.synchronize();
 * ```
 *
 * @module
 */

export {
  Cublas,
  type CublasOptions,
  type GemmOptions,
  type GemmQos,
  type GemmType,
  setGemmQos,
} from "./cublas.ts";
export { cublasCandidates, loadCublas } from "./library.ts";
