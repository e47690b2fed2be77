/**
 * Progress inside long phases: a timeline recorder that also counts the
 * spans each context queues ("token 12", "batch 3", "chunk 40") and, at
 * most every `intervalMs` per context, says how far it is.
 *
 * @module
 */
import type { ExecutionContext, Scheduler } from "../../mod.ts";
import { TimelineRecorder } from "./timeline.ts";

interface Expected {
  readonly prefix: string;
  readonly total: number;
  readonly unit: string;
  done: number;
  lastSaid: number;
}

/** A TimelineRecorder that reports progress of the spans it was told to expect. */
export class ProgressRecorder extends TimelineRecorder {
  readonly #say: (line: string) => void;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #expected = new Map<string, Expected>();

  /**
   * @param say receives the progress lines
   * @param intervalMs least time between two lines of one context
   * @param now the clock (tests pass their own)
   */
  constructor(
    sched: Scheduler,
    first: ExecutionContext,
    say: (line: string) => void,
    intervalMs = 2000,
    now: () => number = () => performance.now(),
  ) {
    super(sched, first);
    this.#say = say;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /**
   * Expects `total` spans named `${prefix} N` on `ctx`'s lane, reported as
   * "`ctx`: `unit` N of `total`".
   */
  expect(ctx: ExecutionContext, prefix: string, total: number, unit: string): void {
    this.#expected.set(ctx.name, {
      prefix: `${prefix} `,
      total,
      unit,
      done: 0,
      lastSaid: this.#now(),
    });
  }

  override begin(
    ctx: ExecutionContext,
    name: string,
    args: Record<string, string | number> = {},
  ): () => void {
    const end = super.begin(ctx, name, args);
    const e = this.#expected.get(ctx.name);
    if (e !== undefined && name.startsWith(e.prefix)) {
      e.done++;
      const now = this.#now();
      if (e.done < e.total && now - e.lastSaid >= this.#intervalMs) {
        e.lastSaid = now;
        const percent = Math.floor((100 * e.done) / e.total);
        this.#say(`${ctx.name}: ${e.unit} ${e.done} of ${e.total} (${percent}%)`);
      }
    }
    return end;
  }
}
