/**
 * The backend tests of the main suites once more, on a host backend with two
 * simulated devices (issue 11: every test runs with 1 and 2 devices). The
 * contexts stay on the default device, so results must not change; what
 * would break is any per-device state that leaked across devices.
 * `deno task test:devices2` runs the whole suite that way.
 */
import { withHostDevices } from "./_helpers.ts";

await withHostDevices(2, async () => {
  await import("./contexts_test.ts?devices=2");
  await import("./streams_events_test.ts?devices=2");
  await import("./memory_pool_test.ts?devices=2");
  await import("./memory_layers_test.ts?devices=2");
  await import("./partitions_test.ts?devices=2");
});
