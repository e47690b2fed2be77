/**
 * A fixed-capacity ring buffer: the trace's memory never grows past its
 * capacity; the oldest entries make way for new ones.
 *
 * @module
 */

/** @internal Keeps the newest `capacity` items pushed, and counts the ones it let go. */
export class RingBuffer<T> {
  /** Most items kept. */
  readonly capacity: number;
  #items: (T | undefined)[];
  #next = 0;
  #size = 0;
  #dropped = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#items = new Array(capacity);
  }

  /** Adds an item, overwriting the oldest when full. */
  push(item: T): void {
    this.#items[this.#next] = item;
    this.#next = this.#next + 1 === this.capacity ? 0 : this.#next + 1;
    if (this.#size < this.capacity) this.#size++;
    else this.#dropped++;
  }

  /** Items held now. */
  get size(): number {
    return this.#size;
  }

  /** Items overwritten since creation. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The items held, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = this.#size < this.capacity ? 0 : this.#next;
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(start + i) % this.capacity]!);
    return out;
  }
}
