/**
 * "background": a BEST_EFFORT job, say refreshing an embedding cache. It
 * fills the memory nobody reserved with evictable buffers and works through
 * them in a loop until stopped. When another context needs that memory the
 * scheduler moves some of them to host memory; using one brings it back.
 *
 * @module
 */
import { alloc, type DeviceBuffer, type ExecutionContext, getAvailableVram } from "../../mod.ts";
import type { DemoKernels } from "./kernels.ts";
import { Random } from "./random.ts";
import type { TimelineRecorder } from "./timeline.ts";

/** Columns of each cached matrix, and of the projection it is multiplied by. */
const COLS = 1024, PROJECTED = 16;

/** What the job did. */
export interface BackgroundResult {
  /** Its evictable buffers. */
  readonly buffers: number;
  readonly refreshes: number;
  /** Host milliseconds it ran. */
  readonly runMs: number;
  /** Times one of its buffers was found moved out to host memory. */
  readonly evictions: number;
}

/** The job, once its cache is filled. */
export class BackgroundJob {
  /** Its evictable buffers. */
  readonly buffers: readonly DeviceBuffer[];
  readonly #ctx: ExecutionContext;
  readonly #k: DemoKernels;
  readonly #projection: DeviceBuffer;
  readonly #out: DeviceBuffer;
  readonly #resident: boolean[];
  #evictions = 0;

  private constructor(
    ctx: ExecutionContext,
    k: DemoKernels,
    buffers: DeviceBuffer[],
    projection: DeviceBuffer,
    out: DeviceBuffer,
  ) {
    this.#ctx = ctx;
    this.#k = k;
    this.buffers = buffers;
    this.#projection = projection;
    this.#out = out;
    this.#resident = buffers.map(() => true);
  }

  /**
   * Fills up to `maxBuffers` evictable buffers of `bufferBytes` while spare
   * memory lasts; call inside a session of the background context.
   */
  static async start(
    ctx: ExecutionContext,
    k: DemoKernels,
    timeline: TimelineRecorder,
    bufferBytes: number,
    maxBuffers: number,
  ): Promise<BackgroundJob> {
    const rows = bufferBytes / 4 / COLS;
    const rng = new Random(7);
    const projection = alloc(COLS * PROJECTED * 4);
    const out = alloc(rows * PROJECTED * 4);
    await projection.write(rng.weights(COLS * PROJECTED, COLS));
    const content = rng.weights(rows * COLS, 1);
    const buffers: DeviceBuffer[] = [];
    const end = timeline.begin(ctx, "fill cache");
    try {
      // Stop at what is spare: past it, a BEST_EFFORT allocation would evict its own buffers.
      while (buffers.length < maxBuffers && getAvailableVram() >= bufferBytes) {
        const buf = alloc(bufferBytes, { evictable: true });
        buffers.push(buf);
        await buf.write(content);
      }
    } finally {
      end();
    }
    return new BackgroundJob(ctx, k, buffers, projection, out);
  }

  /** Refreshes its buffers one after another until `stop.stopped`. */
  async run(timeline: TimelineRecorder, stop: { stopped: boolean }): Promise<BackgroundResult> {
    const started = performance.now();
    const rows = (this.buffers[0]?.size ?? 0) / 4 / COLS;
    let refreshes = 0;
    while (!stop.stopped && this.buffers.length > 0) {
      this.#poll();
      const buf = this.buffers[refreshes % this.buffers.length]!;
      timeline.record(this.#ctx, `refresh ${refreshes + 1}`, () => {
        // Reading buf.ptr restores it first if it was evicted, in stream order.
        this.#k.matmul(this.#ctx.stream, this.#out, buf, this.#projection, rows, PROJECTED, COLS);
      });
      this.#poll();
      refreshes++;
      await this.#ctx.stream.synchronize();
    }
    this.#poll();
    return {
      buffers: this.buffers.length,
      refreshes,
      runMs: performance.now() - started,
      evictions: this.#evictions,
    };
  }

  /** Counts buffers that went from resident to evicted since the last look. */
  #poll(): void {
    this.buffers.forEach((buf, i) => {
      const resident = buf.state === "resident";
      if (this.#resident[i] && !resident) this.#evictions++;
      this.#resident[i] = resident;
    });
  }
}
