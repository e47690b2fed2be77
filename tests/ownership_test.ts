/**
 * One owner per device (issue 11): the scheduler owns a `Device` per GPU,
 * and each device owns its limit owner, context manager, staging area,
 * address space, compute layout and partition manager. Nothing is shared
 * between devices or kept across a shutdown; constructors that default to
 * the initialized scheduler take another one explicitly.
 */
import assert from "node:assert/strict";
import {
  createContext,
  initialize,
  MB,
  MemoryPool,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  SchedulerError,
  shutdown,
} from "../mod.ts";
import { multiDeviceTest } from "./_devices.ts";
import { backendTest } from "./_helpers.ts";

multiDeviceTest("each device owns its own services", (sched) => {
  assert.equal(sched.units.length, sched.devices.length);
  const [zero, one] = [sched.deviceAt(0), sched.deviceAt(1)];
  assert.equal(sched.deviceAt(), sched.deviceAt(sched.device.id));
  for (const [i, device] of sched.units.entries()) {
    assert.equal(device.index, i);
    assert.equal(device.info, sched.devices[i]);
    assert.equal(device.memoryLimit, sched.memoryLimits[i]);
    assert.equal(device.limitOwner.limit, sched.memoryLimits[i]);
    assert.equal(device.contexts.device, i);
  }
  assert.notEqual(zero.limitOwner, one.limitOwner);
  assert.notEqual(zero.contexts, one.contexts);
  assert.notEqual(zero.staging, one.staging);
  assert.notEqual(zero.addressSpace, one.addressSpace);
  assert.equal(zero.addressSpace.device, 0);
  assert.equal(one.addressSpace.device, 1);
  assert.equal(zero.layoutIfMade, undefined, "the compute layout is made on first use");
  assert.notEqual(zero.computeLayout, one.computeLayout);
  assert.equal(one.computeLayout.device, 1);
});

multiDeviceTest("transfers stage through their own device's area", async (sched) => {
  const far = createContext("far", { maxVram: 16 * MB, device: 1 });
  const buf = far.alloc(1 * MB);
  await buf.write(new Uint8Array(buf.size).fill(5));
  assert.equal(sched.deviceAt(0).staging.bytes, 0, "device 0 staged nothing");
  assert.ok(sched.deviceAt(1).staging.bytes > 0, "device 1's area staged the write");
  const pool = new MemoryPool({ quota: 4 * MB, device: 1 });
  const block = pool.allocate(64 * 1024);
  const seen = new Uint8Array(4);
  await block.write(new Uint8Array([1, 2, 3, 4]));
  await block.read(seen);
  assert.deepEqual([...seen], [1, 2, 3, 4]);
  assert.equal(sched.deviceAt(0).staging.bytes, 0, "device 0 still staged nothing");
  assert.equal(sched.deviceAt(1).limitOwner.claimed, 1 * MB + pool.stats().allocatedBytes);
});

multiDeviceTest("a device's partition manager is its own", (sched) => {
  const one = new PartitionManager(new PartitionConfig({ totalMemory: 32 * MB, device: 1 }));
  assert.equal(sched.deviceAt(1).partitions, one);
  assert.equal(sched.deviceAt(0).partitions, undefined);
  one.close();
  assert.equal(sched.deviceAt(1).partitions, undefined);
  const again = new PartitionManager(new PartitionConfig({ device: 1 }));
  assert.equal(sched.deviceAt(1).partitions, again);
});

Deno.test("a shutdown drops every device's services; the next scheduler starts afresh", () => {
  const first = initialize({ backend: "host", hostDevices: 2, hostMemory: 64 * MB });
  const oldDevices = [...first.units];
  const manager = new PartitionManager(new PartitionConfig({ device: 1 }));
  manager.createPartition("p", "P", new PartitionLimits().memory(8 * MB).compute(0.25));
  createContext("llm", { maxVram: 8 * MB, device: 1, partition: "p" }).alloc(1 * MB);
  shutdown();
  assert.equal(oldDevices[1]!.partitions, undefined);
  assert.equal(oldDevices[1]!.layoutIfMade, undefined);
  const second = initialize({ backend: "host", hostDevices: 2, hostMemory: 64 * MB });
  try {
    for (const [i, device] of second.units.entries()) {
      assert.notEqual(device, oldDevices[i]);
      assert.equal(device.limitOwner.claimed, 0);
      assert.equal(device.partitions, undefined);
    }
    // The old scheduler's engine objects are refused, naming why.
    assert.throws(
      () => new MemoryPool({ quota: MB }, undefined, first),
      (e: Error) => e instanceof SchedulerError && /the scheduler was shut down/.test(e.message),
    );
    assert.throws(
      () => new PartitionManager(new PartitionConfig(), first),
      (e: Error) => e instanceof SchedulerError && /the scheduler was shut down/.test(e.message),
    );
  } finally {
    shutdown();
  }
});

backendTest("engine constructors take the scheduler they default to", (sched) => {
  const pool = new MemoryPool({ quota: 4 * MB }, undefined, sched);
  pool.allocate(4096);
  assert.equal(sched.deviceAt().limitOwner.claimed, pool.stats().allocatedBytes);
  const manager = new PartitionManager(new PartitionConfig({ totalMemory: 8 * MB }), sched);
  assert.equal(sched.deviceAt().partitions, manager);
}, { hostMemory: 64 * MB });
