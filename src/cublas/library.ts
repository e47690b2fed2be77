/**
 * Finding and loading libcublas: `GPUSCHED_CUBLAS` (when the environment
 * may be read), then the CUDA toolkit's library directories, then the
 * dynamic loader's search path.
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";

/** The cuBLAS functions the helper calls. */
export const CUBLAS_SYMBOLS = {
  cublasCreate_v2: { parameters: ["buffer"], result: "i32" },
  cublasDestroy_v2: { parameters: ["pointer"], result: "i32" },
  cublasSetStream_v2: { parameters: ["pointer", "pointer"], result: "i32" },
  cublasSetWorkspace_v2: { parameters: ["pointer", "pointer", "usize"], result: "i32" },
  cublasGetVersion_v2: { parameters: ["pointer", "buffer"], result: "i32" },
  cublasGemmEx: {
    parameters: [
      "pointer", // cublasHandle_t
      "i32", // transa
      "i32", // transb
      "i32", // m
      "i32", // n
      "i32", // k
      "buffer", // const void *alpha (host)
      "pointer", // A
      "i32", // Atype
      "i32", // lda
      "pointer", // B
      "i32", // Btype
      "i32", // ldb
      "buffer", // const void *beta (host)
      "pointer", // C
      "i32", // Ctype
      "i32", // ldc
      "i32", // computeType
      "i32", // algo
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library. */
export type CublasLibrary = Deno.DynamicLibrary<typeof CUBLAS_SYMBOLS>["symbols"];

const TOOLKIT_DIRS = [
  "/usr/local/cuda/lib64",
  "/usr/local/cuda/targets/x86_64-linux/lib",
  "/usr/local/cuda-13.0/targets/x86_64-linux/lib",
  "/usr/local/cuda-13.0/lib64",
  "/usr/local/cuda-12/targets/x86_64-linux/lib",
  "/usr/lib/x86_64-linux-gnu",
];
const NAMES = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];

let loaded: { path: string; symbols: CublasLibrary } | undefined;

function envPath(): string | undefined {
  // Queried first, so that a missing grant never prompts: it is just not read.
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_CUBLAS" }).state;
  if (state !== "granted") return undefined;
  return Deno.env.get("GPUSCHED_CUBLAS") || undefined;
}

/**
 * Where libcublas would be looked for, in order.
 *
 * @example
 * ```ts
 * import { cublasCandidates } from "./library.ts";
 * console.assert(cublasCandidates().at(-1) === "libcublas.so");
 * ```
 */
export function cublasCandidates(): string[] {
  const env = envPath();
  const dirs = TOOLKIT_DIRS.flatMap((dir) => NAMES.map((name) => `${dir}/${name}`));
  return [...(env ? [env] : []), ...dirs, ...NAMES];
}

/**
 * libcublas, loaded once.
 *
 * @example
 * ```ts ignore
 * import { loadCublas } from "@gpusched/core/cublas";
 * console.log(loadCublas().path); // e.g. /usr/local/cuda-13.0/targets/x86_64-linux/lib/libcublas.so.13
 * ```
 * @throws {SchedulerError} when no candidate loads (the message lists them and the first reason)
 */
export function loadCublas(): { path: string; symbols: CublasLibrary } {
  if (loaded) return loaded;
  const tried: string[] = [];
  let firstReason = "";
  const env = envPath();
  for (const path of cublasCandidates()) {
    try {
      const lib = Deno.dlopen(path, CUBLAS_SYMBOLS);
      loaded = { path, symbols: lib.symbols };
      return loaded;
    } catch (error) {
      tried.push(path);
      // The user's own choice failing is the reason that matters most.
      if (firstReason === "" || path === env) {
        firstReason = String((error as Error).message ?? error);
      }
    }
  }
  throw new SchedulerError(
    `Cannot load cuBLAS: set GPUSCHED_CUBLAS (with --allow-env=GPUSCHED_CUBLAS) to libcublas.so's path; ` +
      `tried ${tried.length} places (${tried.slice(0, 3).join(", ")}, ...): ${firstReason}`,
  );
}
