/**
 * The backend tests of the main suites once more, on a host backend with two
 * simulated devices (issue 11: every test runs with 1 and 2 devices). The
 * contexts stay on the default device, so results must not change; what
 * would break is any per-device state that leaked across devices (each
 * device owns its limit owner, contexts, staging, address space, compute
 * layout and partitions). Suites that need two devices by nature register
 * their own `multiDeviceTest`s as well (multi_device_test.ts,
 * copy_from_test.ts, partition_memory_test.ts), and leak_test.ts has a
 * two-device cycle. `deno task test:devices2` runs the whole suite with two
 * devices.
 */
import { withHostDevices } from "./_helpers.ts";

await withHostDevices(2, async () => {
  await import("./contexts_test.ts?devices=2");
  await import("./streams_events_test.ts?devices=2");
  await import("./memory_pool_test.ts?devices=2");
  await import("./memory_layers_test.ts?devices=2");
  await import("./partitions_test.ts?devices=2");
  await import("./budget_test.ts?devices=2");
  await import("./sleep_test.ts?devices=2");
  await import("./compute_reservations_test.ts?devices=2");
  await import("./metrics_test.ts?devices=2");
  await import("./abi_memory_test.ts?devices=2");
  await import("./abi_streams_events_test.ts?devices=2");
  await import("./abi_partitions_test.ts?devices=2");
  await import("./abi_vmm_test.ts?devices=2");
  await import("./native_reliability_test.ts?devices=2");
  await import("./demo_kernels_test.ts?devices=2");
  await import("./partition_memory_test.ts?devices=2");
  await import("./model_test.ts?devices=2");
  await import("./model_concurrent_test.ts?devices=2");
});
