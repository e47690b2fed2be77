/**
 * The pool's side of one block: its state, pins, memory, host copy and
 * place in the pool's lists. A PoolBlock keeps its record in a private
 * field and only the memory layers reach it (`recordOf` in pool_block.ts,
 * which mod.ts does not export), so none of this is public API and users
 * cannot corrupt a pool through a block.
 *
 * @module
 */

import type { ListNode } from "../engine/linked_list.ts";
import type { BlockHost, PoolBlock } from "../engine/pool_block.ts";
import type { DeviceMemory } from "./device_source.ts";
import type { HostCopy } from "./host_copies.ts";

/** Where a block is: on the device, moved out to host memory, or given back. */
export type BlockLife = "resident" | "evicted" | "freed";

/**
 * The pool-side state of a block.
 *
 * @example
 * ```ts
 * import { BlockRecord } from "./block_record.ts";
 * import type { BlockHost } from "../engine/pool_block.ts";
 * import assert from "node:assert/strict";
 * const record = new BlockRecord({ name: "pool" } as BlockHost);
 * assert.equal(record.state, "resident");
 * ```
 */
export class BlockRecord {
  /** The pool-side interface; identifies the owning pool. */
  readonly host: BlockHost;
  /** Current state; "freed" once released. */
  state: BlockLife = "resident";
  /** Pins: by `pin()` and by transfers in flight. While above 0, never evicted. */
  pins = 0;
  /** Pins held through `pin()` (a sleeping context refuses them). */
  userPins = 0;
  /** Device memory while resident. */
  memory: DeviceMemory | undefined = undefined;
  /** Pinned host copy while evicted. */
  hostCopy: HostCopy | undefined = undefined;
  /** Node in the evictor's LRU of evictable resident blocks (evictable blocks only). */
  lruNode: ListNode<PoolBlock> | undefined = undefined;
  /** Position in the pool's array of live blocks. */
  index = -1;

  /** The record of a block of the pool behind `host`. */
  constructor(host: BlockHost) {
    this.host = host;
  }
}
