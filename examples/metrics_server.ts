/**
 * A Prometheus endpoint (API.md "Metrics"): two models share the device,
 * and `/metrics` serves `formatPrometheus()` over HTTP with `Deno.serve`,
 * on loopback only, for a Prometheus server (or a sidecar) to scrape.
 *
 * Run: deno run --allow-ffi --allow-net=127.0.0.1:9464 examples/metrics_server.ts
 *        [--backend host|cuda] [--port 9464] [--once]
 *
 * `--port 0` takes any free port (tests do); `--once` scrapes itself one
 * time, prints what it saw and stops, instead of serving until Ctrl-C.
 */
import {
  createContext,
  formatPrometheus,
  initialize,
  MB,
  PROMETHEUS_CONTENT_TYPE,
  QoSPolicy,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Where `serveMetrics` listens. */
export interface MetricsServerOptions {
  /** Address to bind (default 127.0.0.1: scrape through a sidecar or a port-forward). */
  hostname?: string;
  /** Port (default 9464; 0 picks a free one). */
  port?: number;
}

/** A running endpoint: its URL, and how to stop it. */
export interface MetricsServer {
  /** e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops listening; resolves once every open request was answered. */
  shutdown(): Promise<void>;
}

/**
 * Answers `GET /metrics` with a fresh `formatPrometheus()` (503 while no
 * scheduler is initialized), 404 elsewhere, 405 for other methods.
 */
export function metricsHandler(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (path !== "/metrics") return new Response("Not found: try /metrics\n", { status: 404 });
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("Method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  let body: string;
  try {
    body = formatPrometheus();
  } catch (error) {
    if (!(error instanceof SchedulerError)) throw error;
    return new Response(`${error.message}\n`, { status: 503 });
  }
  return new Response(request.method === "HEAD" ? null : body, {
    headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
  });
}

/** Serves `/metrics` until `shutdown()`. */
export function serveMetrics(options: MetricsServerOptions = {}): MetricsServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const server = Deno.serve(
    { hostname, port: options.port ?? 9464, onListen: () => {} },
    metricsHandler,
  );
  const { port } = server.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `http://${host}:${port}/metrics`,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
}

function portFlag(args: readonly string[]): number {
  const i = args.indexOf("--port");
  const value = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith("--port="))?.slice(7);
  if (value === undefined) return 9464;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

/**
 * Runs the example: two contexts with some traffic (an allocation past a
 * budget included), then the endpoint. With `--once` it scrapes itself,
 * returns what it printed and shuts everything down.
 */
export async function main(
  backend: BackendChoice = backendFlag(),
  args: readonly string[] = Deno.args,
): Promise<string[]> {
  const lines: string[] = [];
  const once = args.includes("--once");
  initialize({ backend, memoryLimit: 512 * MB });
  let server: MetricsServer | undefined;
  try {
    const llm = createContext("llm", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
    const vision = createContext("vision", { maxVram: 128 * MB, baseVram: 32 * MB });
    llm.alloc(192 * MB);
    vision.alloc(16 * MB).free(); // cached for reuse now
    try {
      vision.alloc(256 * MB); // past its budget: counted, not fatal
    } catch (error) {
      if (!(error instanceof VramBudgetExceededError)) throw error;
    }
    server = serveMetrics({ port: portFlag(args) });
    lines.push(`serving ${server.url}`);
    if (!once) {
      console.log(lines[0]);
      await server.finished; // serves until the process is stopped (Ctrl-C)
    }
    const response = await fetch(server.url);
    const text = await response.text();
    const samples = text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    lines.push(
      `scraped ${response.status} ${response.headers.get("content-type")}: ` +
        `${text.split("\n").filter((l) => l.startsWith("# TYPE")).length} families, ` +
        `${samples.length} samples`,
    );
    for (
      const name of ["gpusched_context_used_bytes", "gpusched_context_allocation_failures_total"]
    ) {
      lines.push(...samples.filter((l) => l.startsWith(`${name}{`)));
    }
  } finally {
    await server?.shutdown();
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
