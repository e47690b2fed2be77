/**
 * "llm": a small decoder that generates text token by token. Each decode
 * step embeds the previous token (read on the device, where the last step's
 * argmax left it), runs residual tanh layers of matrix-vector products,
 * projects onto the vocabulary, takes the softmax and its argmax, and reads
 * the new token id back, as a real decode loop does to stream its output.
 * Weights are random, so the words are a dream, not an answer.
 *
 * @module
 */
import { alloc, type DeviceBuffer, type ExecutionContext } from "../../mod.ts";
import { MatrixProducts } from "./blas.ts";
import { Activation, type DemoKernels } from "./kernels.ts";
import { Random } from "./random.ts";
import type { TimelineRecorder } from "./timeline.ts";
import { Uploads } from "./uploads.ts";

/** The vocabulary: token id i is WORDS[i]. */
// deno-fmt-ignore
export const WORDS: readonly string[] = [
  "the", "a", "quiet", "machine", "dreams", "of", "light", "and", "music", "under", "silver",
  "rain", "every", "small", "voice", "sings", "through", "glass", "rivers", "carry", "old",
  "stars", "into", "morning", "while", "bright", "engines", "hum", "softly", "near", "blue",
  "mountains", "where", "patient", "clocks", "remember", "warm", "cities", "with", "golden",
  "windows", "open", "to", "wide", "sea", "that", "listens", "slowly", "as", "paper", "birds",
  "fly", "over", "green", "fields", "toward", "distant", "towers", "made", "from", "numbers",
  "waiting", "for", "dawn",
];

/** Sizes of the model and of the run. */
export interface LlmConfig {
  /** Width of the hidden state. */
  readonly dim: number;
  /** Residual layers. */
  readonly layers: number;
  /** Tokens to generate. */
  readonly tokens: number;
  /** First word. */
  readonly prompt: string;
  readonly seed: number;
}

/** What a generation produced and how long it took. */
export interface LlmResult {
  /** The prompt and the generated words. */
  readonly text: string;
  readonly tokens: readonly number[];
  /** Host milliseconds from the first step queued to the last token read. */
  readonly latencyMs: number;
  /** Host milliseconds of each step, queue to token read. */
  readonly stepMs: readonly number[];
}

interface Layer {
  readonly w: DeviceBuffer;
  readonly b: DeviceBuffer;
}

/** A loaded decoder, in the context of the session that loaded it. */
export class TinyLlm {
  readonly config: LlmConfig;
  /** Bytes of weights on the device. */
  readonly weightBytes: number;
  readonly #ctx: ExecutionContext;
  readonly #k: DemoKernels;
  readonly #mm: MatrixProducts;
  readonly #embedding: DeviceBuffer;
  readonly #layers: readonly Layer[];
  readonly #unembedding: DeviceBuffer;
  readonly #x: DeviceBuffer;
  readonly #tmp: DeviceBuffer;
  readonly #logits: DeviceBuffer;
  readonly #token: DeviceBuffer;

  private constructor(
    ctx: ExecutionContext,
    k: DemoKernels,
    config: LlmConfig,
    buffers: {
      embedding: DeviceBuffer;
      layers: Layer[];
      unembedding: DeviceBuffer;
    },
  ) {
    this.#ctx = ctx;
    this.#k = k;
    this.#mm = new MatrixProducts(ctx, k);
    this.config = config;
    this.#embedding = buffers.embedding;
    this.#layers = buffers.layers;
    this.#unembedding = buffers.unembedding;
    const { dim } = config;
    this.weightBytes = (WORDS.length * dim * 2 + config.layers * (dim * dim + dim)) * 4;
    // Activations: allocated once, reused by every step.
    this.#x = alloc(dim * 4);
    this.#tmp = alloc(dim * 4);
    this.#logits = alloc(WORDS.length * 4);
    this.#token = alloc(4);
  }

  /**
   * Generates random weights and uploads them; call inside a session of
   * the llm's context (`alloc()` charges it).
   */
  static async load(
    ctx: ExecutionContext,
    k: DemoKernels,
    config: LlmConfig,
    timeline: TimelineRecorder,
  ): Promise<TinyLlm> {
    const rng = new Random(config.seed);
    const { dim } = config;
    const weights = {
      embedding: rng.weights(WORDS.length * dim, 1),
      layers: Array.from({ length: config.layers }, () => ({
        w: rng.weights(dim * dim, dim, 1.5),
        b: rng.weights(dim, 1, 0.1),
      })),
      // A large gain makes the softmax peaked, as a trained model's often is.
      unembedding: rng.weights(WORDS.length * dim, dim, 4),
    };
    const uploads = new Uploads();
    const buffers = timeline.record(ctx, "load weights", () => ({
      embedding: uploads.put(weights.embedding),
      layers: weights.layers.map((layer) => ({ w: uploads.put(layer.w), b: uploads.put(layer.b) })),
      unembedding: uploads.put(weights.unembedding),
    }));
    await uploads.done();
    return new TinyLlm(ctx, k, config, buffers);
  }

  /**
   * Decodes `config.tokens` tokens after the prompt.
   *
   * @param onToken called with each new word as it is read back
   */
  async generate(timeline: TimelineRecorder, onToken?: (word: string) => void): Promise<LlmResult> {
    const { dim, tokens: count, prompt } = this.config;
    const first = WORDS.indexOf(prompt);
    if (first < 0) {
      throw new RangeError(`The prompt must be a known word, got ${JSON.stringify(prompt)}`);
    }
    const started = performance.now();
    await this.#token.write(new Uint32Array([first]));
    const tokens = [first];
    const stepMs: number[] = [];
    const id = new Uint32Array(1);
    const stream = this.#ctx.stream;
    const k = this.#k;
    for (let position = 0; position < count; position++) {
      const stepStart = performance.now();
      timeline.record(this.#ctx, `token ${position + 1}`, () => {
        k.embed(stream, this.#x, this.#embedding, this.#token, WORDS.length, dim, position);
        for (const layer of this.#layers) {
          this.#mm.matvec(this.#tmp, layer.w, this.#x, dim, dim);
          k.biasAct(stream, this.#tmp, layer.b, 1, dim, Activation.TANH);
          k.add(stream, this.#x, this.#tmp, dim);
        }
        this.#mm.matvec(this.#logits, this.#unembedding, this.#x, WORDS.length, dim);
        k.softmaxRows(stream, this.#logits, 1, WORDS.length);
        k.argmaxRows(stream, this.#token, this.#logits, 1, WORDS.length);
      }, { position });
      await this.#token.read(id);
      tokens.push(id[0]!);
      stepMs.push(performance.now() - stepStart);
      onToken?.(WORDS[id[0]!]!);
    }
    return {
      text: tokens.map((t) => WORDS[t]).join(" "),
      tokens,
      latencyMs: performance.now() - started,
      stepMs,
    };
  }
}
