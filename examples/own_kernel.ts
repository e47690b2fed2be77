/**
 * Bring your own CUDA kernel: a library you built with nvcc, opened with
 * `Deno.dlopen`, launching on a context's stream (`stream.handle`) into
 * buffers the context allocated (`buf.ptr`). gpusched orders it with the
 * context's copies, so a `read` queued after the launch sees its output.
 *
 * The "user library" here is the repository's sample kernels:
 * cuda/kernels.cu (built as libgskernels.so) on CUDA, and its host twin
 * cuda/kernels_host.c (libgskernels_host.so) on the host backend. Your own
 * library would take the same shape:
 *
 * ```c
 * extern "C" int32_t gs_fill_u32(void *stream, void *dst, uint32_t value, uint64_t count) {
 *   fill<<<blocks, 256, 0, (cudaStream_t)stream>>>((uint32_t *)dst, value, count);
 *   return (int32_t)cudaGetLastError();
 * }
 * ```
 *
 * Run: deno run --allow-ffi examples/own_kernel.ts [--backend host|cuda]
 */
import { createContext, getStream, initialize, MB, shutdown } from "../mod.ts";
import { localLibraryPath } from "../src/native/loader.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  const sched = initialize({ backend });
  // Your library, your path; this one sits in the build folder beside libsched.
  const file = sched.backend === "cuda" ? "libgskernels.so" : "libgskernels_host.so";
  const user = Deno.dlopen(localLibraryPath(file), {
    // int32_t gs_fill_u32(void *stream, void *dst, uint32_t value, uint64_t count)
    gs_fill_u32: { parameters: ["pointer", "pointer", "u32", "u64"], result: "i32" },
  });
  try {
    const ctx = createContext("mine", { maxVram: 64 * MB });
    const count = 1 << 20;
    using buf = ctx.alloc(count * 4);

    // Read stream.handle at each launch: it changes when SM partitions are rearranged.
    const status = user.symbols.gs_fill_u32(getStream(ctx).handle, buf.ptr, 1000, BigInt(count));
    if (status !== 0) throw new Error(`gs_fill_u32 failed to launch: status ${status}`);
    lines.push(`launched gs_fill_u32 on ${sched.backend}, stream ${getStream(ctx).id}`);

    const out = new Uint32Array(count);
    await buf.read(out); // queued after the kernel on the same stream
    const wrong = out.findIndex((v, i) => v !== ((1000 + i) >>> 0));
    lines.push(`read back ${count} values: ${wrong < 0 ? "all correct" : `wrong at ${wrong}`}`);
    lines.push(`first values ${Array.from(out.subarray(0, 4)).join(", ")}`);
  } finally {
    shutdown();
    user.close();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
