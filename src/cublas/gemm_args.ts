/**
 * The arguments of `Cublas.gemm()`: checked, with defaults filled in, and
 * every matrix checked to fit in its buffer.
 *
 * @module
 */

import { PoolBlock } from "../engine/pool_block.ts";
import {
  requireBoolean,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  show,
} from "../validate.ts";

/** Element types `gemm` takes (A, B and C of one type; accumulation in fp32). */
export type GemmType = "bf16" | "fp16" | "fp32";

/** Arguments of `Cublas.gemm()`: C = alpha * op(A) * op(B) + beta * C, column-major as cuBLAS. */
export interface GemmOptions {
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  /** Device buffers (of any context of the scheduler). */
  a: PoolBlock;
  b: PoolBlock;
  c: PoolBlock;
  /** Element type of A, B and C (default "bf16"). */
  type?: GemmType;
  /** op(A) = A transposed (default false). */
  transA?: boolean;
  /** op(B) = B transposed (default false). */
  transB?: boolean;
  /** Leading dimensions (default: the tight ones, rows of each stored matrix). */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Default 1. */
  alpha?: number;
  /** Default 0. */
  beta?: number;
}

// cudaDataType values (library_types.h).
const DATA_TYPE: Record<GemmType, number> = { fp32: 0, fp16: 2, bf16: 14 };
const ELEMENT_BYTES: Record<GemmType, number> = { fp32: 4, fp16: 2, bf16: 2 };
const MAX_INT32 = 2 ** 31 - 1;

/** @internal What `parseGemm` gives back. */
export interface ParsedGemm {
  m: number;
  n: number;
  k: number;
  a: PoolBlock;
  b: PoolBlock;
  c: PoolBlock;
  transA: boolean;
  transB: boolean;
  lda: number;
  ldb: number;
  ldc: number;
  alpha: number;
  beta: number;
  dataType: number;
  elementBytes: number;
}

function requireDimension(value: unknown, option: string, doing: string): number {
  const n = requirePositiveInteger(value, option, doing);
  if (n > MAX_INT32) throw new RangeError(`${doing}: ${option} must fit in int32, got ${n}`);
  return n;
}

function requireFinite(value: unknown, option: string, doing: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: ${option} must be a number, got ${show(value)}`);
  }
  if (!Number.isFinite(value)) {
    throw new RangeError(`${doing}: ${option} must be finite, got ${show(value)}`);
  }
  return value;
}

/**
 * @internal Checks every argument, that each matrix fits in its buffer and
 * that every buffer is on `device` (the context's: cuBLAS launches there,
 * and a pointer of another device is no address it can use).
 */
export function parseGemm(options: GemmOptions, doing: string, device: number): ParsedGemm {
  if (options === undefined) throw new TypeError(`${doing}: options are required`);
  const o = requireOptions<GemmOptions>(options, doing);
  const m = requireDimension(o.m, "m", doing);
  const n = requireDimension(o.n, "n", doing);
  const k = requireDimension(o.k, "k", doing);
  const type = o.type === undefined
    ? "bf16"
    : requireOneOf(o.type, ["bf16", "fp16", "fp32"] as const, "type", doing);
  const transA = o.transA === undefined ? false : requireBoolean(o.transA, "transA", doing);
  const transB = o.transB === undefined ? false : requireBoolean(o.transB, "transB", doing);
  const elementBytes = ELEMENT_BYTES[type];
  // Stored shapes (rows x columns), column-major.
  const [aRows, aCols] = transA ? [k, m] : [m, k];
  const [bRows, bCols] = transB ? [n, k] : [k, n];
  const matrix = (name: "a" | "b" | "c", ldName: string, rows: number, cols: number) => {
    const buf = o[name];
    if (!(buf instanceof PoolBlock)) {
      throw new TypeError(`${doing}: ${name} must be a device buffer, got ${show(buf)}`);
    }
    // A block's stream is always of its pool's device (MemoryPool.allocate checks it).
    if (buf.stream.device !== device) {
      throw new RangeError(
        `${doing}: ${name} must be a buffer of the context's device ${device}, ` +
          `got a buffer of device ${buf.stream.device}`,
      );
    }
    const ldValue = (o as unknown as Record<string, unknown>)[ldName];
    const ld = ldValue === undefined ? rows : requireDimension(ldValue, ldName, doing);
    if (ld < rows) {
      throw new RangeError(
        `${doing}: ${ldName} must be at least ${rows} (rows of ${name}), got ${ld}`,
      );
    }
    const bytes = (ld * (cols - 1) + rows) * elementBytes;
    if (bytes > buf.size) {
      throw new RangeError(
        `${doing}: ${name} needs ${bytes} bytes (${rows}x${cols} ${type}, ${ldName} ${ld}), ` +
          `its buffer has ${buf.size}`,
      );
    }
    return { buf, ld };
  };
  const a = matrix("a", "lda", aRows, aCols);
  const b = matrix("b", "ldb", bRows, bCols);
  const c = matrix("c", "ldc", m, n);
  return {
    m,
    n,
    k,
    a: a.buf,
    b: b.buf,
    c: c.buf,
    transA,
    transB,
    lda: a.ld,
    ldb: b.ld,
    ldc: c.ld,
    alpha: requireFinite(o.alpha, "alpha", doing, 1),
    beta: requireFinite(o.beta, "beta", doing, 0),
    dataType: DATA_TYPE[type],
    elementBytes,
  };
}
