import assert from "node:assert/strict";
import { backendFlag, backendOption } from "../examples/_backend.ts";
import { benchBackend } from "../bench/_backend.ts";

Deno.test("--backend is read with parseArgs in both spellings, beside other options", () => {
  assert.equal(backendFlag([]), "auto");
  assert.equal(backendFlag(["--backend", "host"]), "host");
  assert.equal(backendFlag(["--scale=2", "--backend=cuda", "x"]), "cuda");
  assert.equal(backendOption(["--out", "o"]), undefined);
  assert.throws(
    () => backendFlag(["--backend", "tpu"]),
    /--backend must be host, cuda or auto, got "tpu"/,
  );
  assert.throws(
    () => backendFlag(["--backend"]),
    /--backend must be host, cuda or auto, got no value/,
  );
});

Deno.test("benches take --backend before GPUSCHED_BACKEND", () => {
  assert.equal(benchBackend(["--backend", "host"]), "host");
  assert.throws(() => benchBackend(["--backend=gpu"]), RangeError);
  // Without --allow-env=GPUSCHED_BACKEND granted or the variable set: auto.
  const env = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" }).state;
  if (env !== "granted" || !Deno.env.get("GPUSCHED_BACKEND")) {
    assert.equal(benchBackend([]), "auto");
  }
});
