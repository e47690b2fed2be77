/**
 * Which device a new context goes to: the `device` option of
 * `createContext`, with `"auto"` placement.
 *
 * `"auto"` picks the device where the context's reservation (GUARANTEED:
 * `maxVram`, BURSTABLE: `baseVram`, BEST_EFFORT: nothing) can be admitted
 * and that leaves the most unreserved memory after it; ties go to the
 * lowest index. Unreserved memory is a device's limit less every
 * reservation on it: memory that best-effort work merely uses can be
 * reclaimed, reservations cannot. A context bound to a partition is placed
 * among the devices whose partition manager has that partition.
 *
 * @module
 */

import { AdmissionError } from "../errors.ts";
import { QoSPolicy } from "../engine/qos_policy.ts";
import { QosTaskMeta } from "../engine/qos_task.ts";
import type { Scheduler } from "../scheduler.ts";
import { show } from "../validate.ts";
import type { ContextManager } from "./context_manager.ts";

/**
 * The index of the device a context named `name` with `options` goes to.
 * Options other than `device` are checked by `ContextManager.create`; when
 * they are malformed, this answers the default device so that the error
 * raised there names them.
 *
 * @throws {TypeError | RangeError} for a bad `device`, naming it
 * @throws {AdmissionError} for `"auto"` when the reservation fits on no device
 */
export function placeContext(
  scheduler: Scheduler,
  managers: readonly ContextManager[],
  name: unknown,
  options: unknown,
): number {
  if (typeof options !== "object" || options === null) return scheduler.device.id;
  const device = (options as { device?: unknown }).device;
  const doing = `Cannot create context ${show(name)}`;
  if (device === undefined) return scheduler.device.id;
  if (device !== "auto") return scheduler.requireDevice(device, doing);
  const reservation = reservationOf(options as Record<string, unknown>, name);
  if (reservation === undefined) return scheduler.device.id;
  // A context bound to a partition can only go where that partition is (managers are per device).
  const partition = (options as { partition?: unknown }).partition;
  const holding = typeof partition === "string"
    ? managers.filter((m) =>
      scheduler.deviceAt(m.device).partitions?.getPartition(partition) !== undefined
    )
    : [];
  const candidates = holding.length > 0 ? holding : managers;
  let best = -1;
  let bestRoom = -Infinity;
  for (const manager of candidates) {
    const room = manager.unreservedAfter(reservation.task, reservation.bytes);
    if (room !== undefined && room > bestRoom) {
      best = manager.device;
      bestRoom = room;
    }
  }
  if (best < 0) {
    throw new AdmissionError(
      `${doing}: device "auto" found no device where a reservation of ${reservation.bytes} bytes fits ` +
        `(available: ${managers.map((m) => `device ${m.device} ${m.availableVram()}`).join(", ")})`,
    );
  }
  return best;
}

/** The reservation and QoS task the options ask for; undefined when they are malformed. */
function reservationOf(
  options: Record<string, unknown>,
  name: unknown,
): { bytes: number; task: QosTaskMeta | undefined } | undefined {
  const { maxVram, baseVram, qos = QoSPolicy.BURSTABLE } = options;
  if (typeof name !== "string" || name.length === 0) return undefined;
  if (!isBytes(maxVram) || maxVram === 0) return undefined;
  if (baseVram !== undefined && (!isBytes(baseVram) || baseVram > maxVram)) return undefined;
  if (baseVram !== undefined && qos !== QoSPolicy.BURSTABLE) return undefined;
  switch (qos) {
    case QoSPolicy.GUARANTEED:
      return { bytes: maxVram, task: QosTaskMeta.guaranteed(name, name, maxVram) };
    case QoSPolicy.BURSTABLE: {
      const base = (baseVram as number | undefined) ?? 0;
      return { bytes: base, task: QosTaskMeta.burstable(name, name, maxVram, { base }) };
    }
    case QoSPolicy.BEST_EFFORT:
      return { bytes: 0, task: undefined };
    default:
      return undefined;
  }
}

function isBytes(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
