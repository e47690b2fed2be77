import assert from "node:assert/strict";
import { cudaUnavailableReason } from "../mod.ts";
import { missingDriverReason } from "../src/native/cuda_driver.ts";

function driverLoads(): boolean {
  try {
    Deno.dlopen("libcuda.so.1", {}).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("cudaUnavailableReason() says 'no CUDA driver' exactly when libcuda.so.1 does not load", () => {
  const reason = cudaUnavailableReason();
  if (driverLoads()) {
    assert.doesNotMatch(missingDriverReason() ?? "", /libcuda\.so\.1: /);
    assert.doesNotMatch(reason ?? "", /libcuda\.so\.1: /);
  } else {
    assert.match(reason ?? "", /^no CUDA driver \(libcuda\.so\.1: /);
    assert.doesNotMatch(reason ?? "", /insufficient|Could not open library/);
  }
});
