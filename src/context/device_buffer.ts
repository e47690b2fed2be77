/**
 * DeviceBuffer: device memory allocated by an execution context.
 *
 * @module
 */

import { type BlockHost, PoolBlock } from "../engine/pool_block.ts";
import type { Stream } from "../stream.ts";
import type { ExecutionContext } from "./execution_context.ts";

/**
 * Device memory charged to a context: a PoolBlock of the context's pool
 * (`ptr`, `size`, `write`, `read`, `pin`, `resident`, `free`) that also
 * knows its `context`. Copies run on the context's stream.
 *
 * @example
 * ```ts
 * import { alloc, contextSession, createContext, initialize, MB, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * {
 *   using _s = contextSession(llm);
 *   using buf = alloc(1 * MB);
 *   assert.equal(buf.context, llm);
 * }
 * shutdown();
 * ```
 */
export class DeviceBuffer extends PoolBlock {
  /** The context it is charged to. */
  readonly context: ExecutionContext;

  /**
   * @internal Made by the context's pool. The parameters after `context` are
   * PoolBlock's, written out: a rest tuple here is a slow type that
   * `deno publish` cannot emit (TS2556).
   */
  constructor(
    context: ExecutionContext,
    host: BlockHost,
    id: number,
    size: number,
    classSize: number,
    evictable: boolean,
    stream: Stream,
  ) {
    super(host, id, size, classSize, evictable, stream);
    this.context = context;
  }
}
