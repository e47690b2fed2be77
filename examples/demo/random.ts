/**
 * Seeded random numbers for weights and images: every run of the demo
 * computes the same thing, and no weights are downloaded. The tests draw
 * from the same generator (tests/_helpers.ts).
 *
 * @module
 */

/** A small seeded generator (mulberry32). */
export class Random {
  #state: number;

  /** @param seed any integer; the same seed gives the same sequence */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  uint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /**
   * Fills `out` with uniform bytes, four per draw (the bytes of `uint32()`,
   * low first), in one loop on a local state: large fills make no garbage.
   */
  fillBytes(out: Uint8Array): Uint8Array {
    let s = this.#state | 0;
    for (let i = 0; i < out.length; i += 4) {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), s | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      t ^= t >>> 14;
      // Stores past the end of a typed array are ignored.
      out[i] = t;
      out[i + 1] = t >>> 8;
      out[i + 2] = t >>> 16;
      out[i + 3] = t >>> 24;
    }
    this.#state = s >>> 0;
    return out;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * `n` weights uniform in [-limit, limit) with limit = gain * sqrt(3 / fanIn):
   * variance gain² / fanIn, so a product with fanIn inputs keeps its scale.
   */
  weights(n: number, fanIn: number, gain = 1): Float32Array {
    const limit = gain * Math.sqrt(3 / fanIn);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.next() * 2 - 1) * limit;
    return out;
  }
}
