/**
 * examples/metrics_server.ts over real loopback HTTP: what a Prometheus
 * server scraping it gets, read with a Prometheus text parser from npm.
 */
import assert from "node:assert/strict";
import {
  createContext,
  initialize,
  MB,
  onMemoryPressure,
  PROMETHEUS_CONTENT_TYPE,
  QoSPolicy,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { serveMetrics } from "../examples/metrics_server.ts";
import { BACKENDS } from "./_helpers.ts";
import { contextSample, family, parsePrometheus } from "./_prometheus.ts";

async function scrape(url: string) {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  return parsePrometheus(await response.text());
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `[${backend.name}] a scrape of /metrics over loopback follows allocations, refusals, ` +
      `evictions, restores and pressure calls${backend.skip ? ` (skipped: ${backend.skip})` : ""}`,
    ignore: backend.skip !== undefined,
    async fn() {
      const server = serveMetrics({ port: 0 });
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      try {
        initialize({ backend: backend.name, hostMemory: 64 * MB, memoryLimit: 64 * MB });
        const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
        const name = 'vision "v2"\\eu\nwest';
        const vision = createContext(name, { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
        const bufs = [0, 1].map(() => bg.alloc(16 * MB, { evictable: true }));

        let families = await scrape(server.url);
        assert.equal(contextSample(families, "gpusched_context_used_bytes", "bg"), 32 * MB);
        assert.equal(contextSample(families, "gpusched_context_reserved_bytes", name), 32 * MB);
        assert.equal(contextSample(families, "gpusched_context_allocations_total", "bg"), 2);
        assert.equal(
          Number(family(families, "gpusched_device_memory_limit_bytes").metrics[0]!.value),
          64 * MB,
        );

        // bg grows past the spare memory: one handler call, one of its own buffers evicted.
        const off = onMemoryPressure(() => true);
        bg.alloc(16 * MB, { evictable: true });
        off();
        assert.throws(() => vision.alloc(64 * MB), VramBudgetExceededError);
        await bufs[0]!.read(new Uint8Array(4)); // restores it (evicting another)

        families = await scrape(server.url);
        assert.equal(contextSample(families, "gpusched_context_allocations_total", "bg"), 3);
        assert.equal(contextSample(families, "gpusched_context_pressure_events_total", "bg"), 1);
        assert.ok(contextSample(families, "gpusched_context_evictions_total", "bg") >= 2);
        assert.equal(contextSample(families, "gpusched_context_restores_total", "bg"), 1);
        assert.ok(contextSample(families, "gpusched_context_evicted_bytes", "bg") >= 16 * MB);
        assert.equal(
          contextSample(families, "gpusched_context_allocation_failures_total", name),
          1,
        );
        assert.equal(contextSample(families, "gpusched_context_pressure_events_total", name), 0);
        const labels = family(families, "gpusched_context_max_bytes").metrics
          .find((m) => m.labels?.["context"] === name)!.labels;
        assert.deepEqual(labels, { context: name, qos: "guaranteed", device: "0" });

        vision.destroy();
        families = await scrape(server.url);
        assert.deepEqual(
          family(families, "gpusched_context_used_bytes").metrics.map((m) => m.labels?.["context"]),
          ["bg"],
        );
      } finally {
        shutdown();
        await server.shutdown();
      }
    },
  });
}

Deno.test("the metrics endpoint answers 503 without a scheduler, 404 elsewhere, 405 for POST, and HEAD without a body", async () => {
  const server = serveMetrics({ port: 0 });
  try {
    const unready = await fetch(server.url);
    assert.equal(unready.status, 503);
    assert.match(await unready.text(), /not initialized/);
    const other = await fetch(server.url.replace("/metrics", "/"));
    assert.equal(other.status, 404);
    await other.body?.cancel();
    const post = await fetch(server.url, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.body?.cancel();
    initialize({ backend: "host" });
    const head = await fetch(server.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  } finally {
    shutdown();
    await server.shutdown();
  }
});
