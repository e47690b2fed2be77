/**
 * Whether an NVIDIA driver is present at all. Without one, the CUDA runtime
 * reports "driver version is insufficient", which reads as an upgrade
 * problem; this says what is really missing.
 *
 * @module
 */

/** The driver library the CUDA runtime opens. */
const DRIVER_LIBRARY = "libcuda.so.1";

/**
 * "no CUDA driver (...)" when libcuda.so.1 cannot be loaded or reports
 * driver version 0, else undefined (a driver is there; CUDA's own reason
 * stands).
 */
export function missingDriverReason(): string | undefined {
  let driver;
  try {
    driver = Deno.dlopen(DRIVER_LIBRARY, {
      cuDriverGetVersion: { parameters: ["buffer"], result: "i32" }, // CUresult (int *version)
    });
  } catch (error) {
    // Deno prefixes dlerror()'s text with "Could not open library: " (twice).
    const detail = (error instanceof Error ? error.message : String(error))
      .replaceAll("Could not open library: ", "");
    return `no CUDA driver (${
      detail.includes(DRIVER_LIBRARY) ? detail : `${DRIVER_LIBRARY}: ${detail}`
    })`;
  }
  try {
    const version = new Int32Array(1);
    const status = driver.symbols.cuDriverGetVersion(version);
    if (status !== 0 || version[0] === 0) {
      return `no CUDA driver (${DRIVER_LIBRARY} reports version ${version[0]}, status ${status})`;
    }
    return undefined;
  } finally {
    driver.close();
  }
}
