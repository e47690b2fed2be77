/**
 * A fixed-capacity ring buffer of trace records in typed arrays: pushing
 * the frequent records (a memory event and its counter values) allocates
 * nothing, so a long recording makes no garbage for the collector, and
 * memory never grows past the capacity. The oldest records make way.
 *
 * @module
 */

/** @internal Record kinds: what the columns of a record hold. */
export const Kind = {
  /** `ref` is a whole Chrome trace event (rare events: flows, waits, contexts). */
  EVENT: 0,
  /** An instant memory event: `ref` its name, `a` its bytes. */
  MEMORY: 1,
  /** The track's memory counter: `a` used, `b` cached, `c` evicted bytes. */
  COUNTER: 2,
} as const;

/** @internal One record, as `forEach` hands it out. */
export type RecordVisitor = (
  kind: number,
  ts: number,
  tid: number,
  ref: unknown,
  a: number,
  b: number,
  c: number,
) => void;

/** @internal Keeps the newest `capacity` records, and counts the ones it let go. */
export class EventRing {
  /** Most records kept. */
  readonly capacity: number;
  readonly #kind: Uint8Array;
  readonly #ts: Float64Array;
  readonly #tid: Int32Array;
  readonly #a: Float64Array;
  readonly #b: Float64Array;
  readonly #c: Float64Array;
  readonly #ref: unknown[];
  #next = 0;
  #size = 0;
  #dropped = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#kind = new Uint8Array(capacity);
    this.#ts = new Float64Array(capacity);
    this.#tid = new Int32Array(capacity);
    this.#a = new Float64Array(capacity);
    this.#b = new Float64Array(capacity);
    this.#c = new Float64Array(capacity);
    this.#ref = new Array(capacity).fill(undefined);
  }

  /** Adds a record, overwriting the oldest when full. */
  push(kind: number, ts: number, tid: number, ref: unknown, a = 0, b = 0, c = 0): void {
    const i = this.#next;
    this.#kind[i] = kind;
    this.#ts[i] = ts;
    this.#tid[i] = tid;
    this.#ref[i] = ref;
    this.#a[i] = a;
    this.#b[i] = b;
    this.#c[i] = c;
    this.#next = i + 1 === this.capacity ? 0 : i + 1;
    if (this.#size < this.capacity) this.#size++;
    else this.#dropped++;
  }

  /** Records held now. */
  get size(): number {
    return this.#size;
  }

  /** Records overwritten since creation. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Visits the records held, oldest first. */
  forEach(visit: RecordVisitor): void {
    const start = this.#size < this.capacity ? 0 : this.#next;
    for (let n = 0; n < this.#size; n++) {
      const i = (start + n) % this.capacity;
      visit(
        this.#kind[i]!,
        this.#ts[i]!,
        this.#tid[i]!,
        this.#ref[i],
        this.#a[i]!,
        this.#b[i]!,
        this.#c[i]!,
      );
    }
  }
}
