/**
 * Where a running QEMU has its disks and NICs on the PCI buses, and a spec laid out the same way. A device added
 * live sits on a hot-plug port (`hotplugN`, the first free one when it was plugged); a spec rebuilt from the
 * instance's record would put it at its cold place, and a migration needs both sides' device trees equal.
 */
import { VirtnodeError } from '../lib/errors.ts';
import { type PciDeviceInfo, queryPci } from '../qmp/commands.ts';
import type { QmpConnection } from '../qmp/connection.ts';
import { HOTPLUG_PORTS, hotplugPortId } from './argv.ts';
import type { QemuSpec } from './spec.ts';

/** The root bus's name, as a device's place. */
export const ROOT_BUS = 'pcie.0';

/** Each device's bus, by QEMU device id: `pcie.0` (the root bus) or the id of the port or bridge it sits behind. */
export async function devicePlacement(qmp: QmpConnection): Promise<Map<string, string>> {
  const placement = new Map<string, string>();
  const walk = (devices: PciDeviceInfo[], bus: string) => {
    for (const d of devices) {
      if (d.qdev_id !== '') placement.set(d.qdev_id, bus);
      if (d.pci_bridge?.devices !== undefined) walk(d.pci_bridge.devices, d.qdev_id);
    }
  };
  for (const b of await queryPci(qmp)) walk(b.devices, ROOT_BUS);
  return placement;
}

const HOTPLUG_PORT_IDS = new Set(Array.from({ length: HOTPLUG_PORTS }, (_, i) => hotplugPortId(i)));

/**
 * `spec` with each disk and NIC on the bus the running QEMU has it on (`placement`, devicePlacement's answer):
 * on its hot-plug port, or on the root bus (in the spec's order, as QEMU placed it at the start). Refused, naming
 * the field, when the two disagree in a way the command line cannot repeat: a device of the spec the QEMU lacks,
 * one elsewhere than the root bus or a hot-plug port, or a device on a hot-plug port the spec does not have.
 */
export function placedAsRunning(spec: QemuSpec, placement: ReadonlyMap<string, string>): QemuSpec {
  const busOf = (field: 'disks' | 'nics', what: string, deviceId: string): string | undefined => {
    const bus = placement.get(deviceId);
    if (bus === undefined) {
      throw new VirtnodeError('INVALID_STATE', `${field}: ${spec.name}'s QEMU has no device ${deviceId} for its ${what}`, {
        field,
        hint: 'an attach or detach may not have finished: wait for it, or restart the instance, then move it',
      });
    }
    if (bus === ROOT_BUS) return undefined;
    if (HOTPLUG_PORT_IDS.has(bus)) return bus;
    throw new VirtnodeError('HOST_UNSUPPORTED', `${field}: ${spec.name}'s ${what} sits on bus ${bus}, which the target cannot repeat`, { field });
  };
  const disks = spec.disks.map((d) => {
    const { bus: _old, ...disk } = d;
    const bus = busOf('disks', `disk ${d.id}`, `${d.id}-dev`);
    return bus === undefined ? disk : { ...disk, bus };
  });
  const nics = spec.nics.map((n) => {
    const { bus: _old, ...nic } = n;
    const bus = busOf('nics', `NIC ${n.mac}`, `${n.id}-dev`);
    return bus === undefined ? nic : { ...nic, bus };
  });
  const known = new Set([...spec.disks.map((d) => `${d.id}-dev`), ...spec.nics.map((n) => `${n.id}-dev`)]);
  const strangers = [...placement].filter(([id, bus]) => HOTPLUG_PORT_IDS.has(bus) && !known.has(id)).map(([id, bus]) => `${id} (on ${bus})`);
  if (strangers.length > 0) {
    throw new VirtnodeError('INVALID_STATE', `devices: ${spec.name}'s QEMU has ${strangers.join(', ')}, which its record does not have`, {
      field: 'devices',
      hint: 'an attach or detach may not have finished: wait for it, or restart the instance, then move it',
    });
  }
  return { ...spec, disks, nics };
}
