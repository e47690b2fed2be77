/**
 * "vision": a small convolutional classifier run over batches of generated
 * images: two 3x3 convolutions (im2col + tiled matrix products, the second
 * with stride 2), ReLU, global average pooling, a linear classifier,
 * softmax and argmax. Weights are random, so the labels are arbitrary but
 * repeatable.
 *
 * @module
 */
import { alloc, type DeviceBuffer, type ExecutionContext } from "../../mod.ts";
import { MatrixProducts } from "./blas.ts";
import { Activation, type DemoKernels, outSide } from "./kernels.ts";
import { Random } from "./random.ts";
import type { TimelineRecorder } from "./timeline.ts";
import { Uploads } from "./uploads.ts";

/** Class labels: label id i is LABELS[i]. */
// deno-fmt-ignore
export const LABELS: readonly string[] = [
  "cat", "dog", "bird", "boat", "tree", "car", "house", "flower", "fish", "star",
];

/** Channels of the first and second convolution. */
const C1 = 16, C2 = 32;

/** Sizes of the model and of the run. */
export interface VisionConfig {
  /** Images to classify. */
  readonly images: number;
  /** Images per batch (one group of kernels each). */
  readonly batch: number;
  /** Images are side x side, one channel. */
  readonly side: number;
  readonly seed: number;
}

/** What a run produced and how long it took. */
export interface VisionResult {
  /** A label id per image. */
  readonly labels: readonly number[];
  readonly batches: number;
  /** Host milliseconds from the first batch queued to the last labels read. */
  readonly latencyMs: number;
}

interface Weights {
  readonly w1: DeviceBuffer;
  readonly b1: DeviceBuffer;
  readonly w2: DeviceBuffer;
  readonly b2: DeviceBuffer;
  readonly wc: DeviceBuffer;
  readonly bc: DeviceBuffer;
}

/** Working buffers of one batch, allocated once and reused. */
interface Activations {
  readonly images: DeviceBuffer;
  readonly patches1: DeviceBuffer;
  readonly features1: DeviceBuffer;
  readonly patches2: DeviceBuffer;
  readonly features2: DeviceBuffer;
  readonly pooled: DeviceBuffer;
  readonly logits: DeviceBuffer;
  readonly labels: DeviceBuffer;
}

/** A loaded classifier, in the context of the session that loaded it. */
export class TinyVision {
  readonly config: VisionConfig;
  readonly #ctx: ExecutionContext;
  readonly #k: DemoKernels;
  readonly #mm: MatrixProducts;
  readonly #w: Weights;
  readonly #a: Activations;

  private constructor(
    ctx: ExecutionContext,
    k: DemoKernels,
    config: VisionConfig,
    w: Weights,
    a: Activations,
  ) {
    this.#ctx = ctx;
    this.#k = k;
    this.#mm = new MatrixProducts(ctx, k);
    this.config = config;
    this.#w = w;
    this.#a = a;
  }

  /**
   * Generates random weights, uploads them and allocates the batch
   * buffers; call inside a session of the vision context.
   */
  static async load(
    ctx: ExecutionContext,
    k: DemoKernels,
    config: VisionConfig,
    timeline: TimelineRecorder,
  ): Promise<TinyVision> {
    const rng = new Random(config.seed);
    const K = LABELS.length;
    const host = {
      w1: rng.weights(9 * C1, 9, 2),
      b1: rng.weights(C1, 1, 0.05),
      w2: rng.weights(9 * C1 * C2, 9 * C1, 2),
      b2: rng.weights(C2, 1, 0.05),
      wc: rng.weights(C2 * K, C2, 2),
      bc: rng.weights(K, 1, 0.05),
    };
    const uploads = new Uploads();
    const w = timeline.record(ctx, "load weights", () => ({
      w1: uploads.put(host.w1),
      b1: uploads.put(host.b1),
      w2: uploads.put(host.w2),
      b2: uploads.put(host.b2),
      wc: uploads.put(host.wc),
      bc: uploads.put(host.bc),
    }));
    await uploads.done();
    const { batch, side } = config;
    const pixels = batch * side * side;
    const pixels2 = batch * outSide(side, 2) ** 2;
    const f32 = (n: number) => alloc(n * 4);
    const a: Activations = {
      images: f32(pixels),
      patches1: f32(pixels * 9),
      features1: f32(pixels * C1),
      patches2: f32(pixels2 * 9 * C1),
      features2: f32(pixels2 * C2),
      pooled: f32(batch * C2),
      logits: f32(batch * K),
      labels: f32(batch),
    };
    const model = new TinyVision(ctx, k, config, w, a);
    await model.#calibrate(timeline, host.wc, host.bc);
    return model;
  }

  /**
   * Folds a normalization of the pooled features into the classifier, as
   * a trained network's batch norm would be folded: the features of a
   * random ReLU network share a large common part that would otherwise
   * give every image the same label. Measured on a batch of images.
   */
  async #calibrate(timeline: TimelineRecorder, wc: Float32Array, bc: Float32Array): Promise<void> {
    const { batch, side, seed } = this.config;
    const K = LABELS.length;
    const pixels = generateImages(new Random(seed + 2), batch, side);
    const written = timeline.record(
      this.#ctx,
      "calibrate",
      () => this.#enqueueBatch(pixels, batch),
    );
    const pooled = new Float32Array(batch * C2);
    await written;
    await this.#a.pooled.read(pooled);
    const foldedW = new Float32Array(C2 * K);
    const foldedB = Float32Array.from(bc);
    for (let c = 0; c < C2; c++) {
      let mean = 0, square = 0;
      for (let i = 0; i < batch; i++) mean += pooled[i * C2 + c]! / batch;
      for (let i = 0; i < batch; i++) square += (pooled[i * C2 + c]! - mean) ** 2 / batch;
      const scale = 1 / Math.sqrt(square + 1e-6);
      for (let j = 0; j < K; j++) {
        foldedW[c * K + j] = wc[c * K + j]! * scale;
        foldedB[j]! -= wc[c * K + j]! * scale * mean;
      }
    }
    await Promise.all([this.#w.wc.write(foldedW), this.#w.bc.write(foldedB)]);
  }

  /**
   * Classifies `config.images` generated images, a batch at a time.
   *
   * @param onBatch called with the labels of each batch as they are read back
   */
  async classify(
    timeline: TimelineRecorder,
    onBatch?: (labels: readonly number[]) => void,
  ): Promise<VisionResult> {
    const { images, batch, side, seed } = this.config;
    const rng = new Random(seed + 1);
    const started = performance.now();
    const labels: number[] = [];
    let batches = 0;
    for (let first = 0; first < images; first += batch) {
      const n = Math.min(batch, images - first);
      const pixels = generateImages(rng, n, side);
      const written = timeline.record(
        this.#ctx,
        `batch ${++batches}`,
        () => this.#enqueueBatch(pixels, n),
        { images: n },
      );
      const out = new Uint32Array(n);
      await written;
      await this.#a.labels.read(out);
      labels.push(...out);
      onBatch?.(Array.from(out));
    }
    return { labels, batches, latencyMs: performance.now() - started };
  }

  /** Queues the upload of a batch and its forward pass; resolves when the upload is done. */
  #enqueueBatch(pixels: Float32Array, n: number): Promise<void> {
    const k = this.#k, s = this.#ctx.stream, w = this.#w, a = this.#a;
    const side = this.config.side, side2 = outSide(side, 2), K = LABELS.length;
    // Queued now, so the kernels below run after it (the batch is well under a staging chunk).
    const written = a.images.write(pixels);
    k.im2col(s, a.patches1, a.images, n, side, side, 1, 1);
    this.#mm.matmul(a.features1, a.patches1, w.w1, n * side * side, C1, 9);
    k.biasAct(s, a.features1, w.b1, n * side * side, C1, Activation.RELU);
    k.im2col(s, a.patches2, a.features1, n, side, side, C1, 2);
    this.#mm.matmul(a.features2, a.patches2, w.w2, n * side2 * side2, C2, 9 * C1);
    k.biasAct(s, a.features2, w.b2, n * side2 * side2, C2, Activation.RELU);
    k.meanRows(s, a.pooled, a.features2, n, side2 * side2, C2);
    this.#mm.matmul(a.logits, a.pooled, w.wc, n, K, C2);
    k.biasAct(s, a.logits, w.bc, n, K, Activation.NONE);
    k.softmaxRows(s, a.logits, n, K);
    k.argmaxRows(s, a.labels, a.logits, n, K);
    return written;
  }
}

/**
 * `count` side x side grayscale images in [0, 1]: discs, stripes, checkers
 * and gradients at random places and scales, with noise.
 */
export function generateImages(rng: Random, count: number, side: number): Float32Array {
  const out = new Float32Array(count * side * side);
  for (let i = 0; i < count; i++) {
    const kind = rng.int(4);
    const cx = rng.next() * side, cy = rng.next() * side;
    const size = 2 + rng.next() * side / 3;
    const image = out.subarray(i * side * side, (i + 1) * side * side);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        let v: number;
        if (kind === 0) v = Math.hypot(x - cx, y - cy) < size ? 1 : 0;
        else if (kind === 1) v = Math.floor((x + cx) / size) % 2;
        else if (kind === 2) v = (Math.floor(x / size) + Math.floor(y / size)) % 2;
        else v = (x * cx + y * cy) / (side * side * 2);
        image[y * side + x] = Math.min(1, Math.max(0, v + (rng.next() - 0.5) * 0.2));
      }
    }
  }
  return out;
}
