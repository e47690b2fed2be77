/**
 * How many columns (along N) one piece of a sliced GEMM gets: from a FLOP
 * budget, or from a target duration and the speed measured on earlier
 * pieces (`PieceSpeed`).
 *
 * @module
 */

/** Pieces are whole multiples of this many columns (at least one multiple). */
export const PIECE_STEP = 128;

/**
 * Columns per piece for a GEMM of `n` columns costing `flopsPerColumn`
 * each: `targetUs` at the measured `usPerFlop` when both are given and
 * positive, else `maxPieceFlops` (0 or less: the whole GEMM). Rounded down
 * to a multiple of `PIECE_STEP`, at least one step, at most `n`.
 *
 * @example
 * ```ts
 * import { pieceColumns } from "./piece_sizing.ts";
 * const perColumn = 2 * 8192 * 8192;
 * console.assert(pieceColumns(8192, perColumn, 2.8e11) === 2048);
 * console.assert(pieceColumns(8192, perColumn, 2.8e11, 300, 449 / (2048 * perColumn)) === 1280);
 * console.assert(pieceColumns(8192, perColumn, 0) === 8192);
 * ```
 */
export function pieceColumns(
  n: number,
  flopsPerColumn: number,
  maxPieceFlops: number,
  targetUs = 0,
  usPerFlop?: number,
): number {
  let flops = maxPieceFlops;
  if (targetUs > 0 && usPerFlop !== undefined && usPerFlop > 0 && Number.isFinite(usPerFlop)) {
    flops = targetUs / usPerFlop;
  }
  if (!(flops > 0) || !(flopsPerColumn > 0)) return n;
  const fit = Math.floor(flops / flopsPerColumn);
  return Math.min(n, Math.max(PIECE_STEP, fit - (fit % PIECE_STEP)));
}

/**
 * The speed of pieces on one device's shared SMs, smoothed: each sample
 * weighs 0.3, so one slow piece (a layout change, the owner's burst)
 * moves the size of the next pieces only partly.
 *
 * @example
 * ```ts
 * import { PieceSpeed } from "./piece_sizing.ts";
 * const speed = new PieceSpeed();
 * speed.add(449, 2048 * 2 * 8192 * 8192);
 * console.assert(speed.usPerFlop! > 0);
 * speed.add(-1, 10); // not a measurement: ignored
 * ```
 */
export class PieceSpeed {
  #usPerFlop: number | undefined;

  /** µs per FLOP so far (undefined until a piece was measured). */
  get usPerFlop(): number | undefined {
    return this.#usPerFlop;
  }

  /** Adds a piece that took `us` for `flops`; ignores what is not a positive finite measurement. */
  add(us: number, flops: number): void {
    if (!(us > 0) || !(flops > 0) || !Number.isFinite(us) || !Number.isFinite(flops)) return;
    const sample = us / flops;
    this.#usPerFlop = this.#usPerFlop === undefined ? sample : 0.7 * this.#usPerFlop + 0.3 * sample;
  }
}
