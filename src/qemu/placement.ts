/**
 * Where a running QEMU has its disks and NICs on the PCI buses, and a spec laid out the same way. A device added
 * live sits on a hot-plug port (`hotplugN`, the first free one when it was plugged); a spec rebuilt from the
 * instance's record would put it at its cold place, and a migration needs both sides' device trees equal.
 */
import { VirtnodeError } from '../lib/errors.ts';
import { qomGet, qomList } from '../qmp/commands.ts';
import type { QmpConnection } from '../qmp/connection.ts';
import { HOTPLUG_PORTS, hotplugPortId } from './argv.ts';
import type { QemuSpec } from './spec.ts';

/** Where QEMU keeps the devices given an id. */
const PERIPHERALS = '/machine/peripheral';

/** The root bus's name, as a device's place. */
export const ROOT_BUS = 'pcie.0';

/** Where a device sits: its bus (`pcie.0`, or the id of the port it is behind) and its PCI devfn there. */
export interface DevicePlace {
  bus: string;
  devfn: number;
}

/**
 * Each device's place, by QEMU device id. Asked of QOM (each device's `parent_bus` and `addr`), not of query-pci,
 * whose tree follows the bus numbers the guest gave the ports.
 */
export async function devicePlacement(qmp: QmpConnection): Promise<Map<string, DevicePlace>> {
  const placement = new Map<string, DevicePlace>();
  const devices = await qomList(qmp, { path: PERIPHERALS });
  for (const d of devices) {
    if (!d.type.startsWith('child<')) continue;
    const path = `${PERIPHERALS}/${d.name}`;
    const bus = await qomGet<string>(qmp, { path, property: 'parent_bus' }).catch(() => undefined);
    const devfn = await qomGet<number>(qmp, { path, property: 'addr' }).catch(() => undefined);
    // The bus's QOM path ends in its name: /machine/q35/pcie.0, /machine/peripheral/hotplug1/hotplug1.
    if (typeof bus === 'string' && bus !== '' && typeof devfn === 'number') placement.set(d.name, { bus: bus.slice(bus.lastIndexOf('/') + 1), devfn });
  }
  return placement;
}

const HOTPLUG_PORT_IDS = new Set(Array.from({ length: HOTPLUG_PORTS }, (_, i) => hotplugPortId(i)));

/**
 * `spec` with each disk and NIC on the bus the running QEMU has it on (`placement`, devicePlacement's answer):
 * on its hot-plug port, or on the root bus (in the spec's order, as QEMU placed it at the start). Refused, naming
 * the field, when the two disagree in a way the command line cannot repeat: a device of the spec the QEMU lacks,
 * one elsewhere than the root bus or a hot-plug port, or a device on a hot-plug port the spec does not have.
 */
export function placedAsRunning(spec: QemuSpec, placement: ReadonlyMap<string, DevicePlace>): QemuSpec {
  const busOf = (field: 'disks' | 'nics', what: string, deviceId: string): string | undefined => {
    const place = placement.get(deviceId);
    if (place === undefined) {
      throw new VirtnodeError('INVALID_STATE', `${field}: ${spec.name}'s QEMU has no device ${deviceId} for its ${what}`, {
        field,
        hint: 'an attach or detach may not have finished: wait for it, or restart the instance, then move it',
      });
    }
    if (place.bus === ROOT_BUS) return undefined;
    if (HOTPLUG_PORT_IDS.has(place.bus) && place.devfn === 0) return place.bus;
    throw new VirtnodeError('HOST_UNSUPPORTED', `${field}: ${spec.name}'s ${what} sits on bus ${place.bus} at devfn ${place.devfn}, which the target cannot repeat`, {
      field,
      hint: `a hot-plug port takes one device (devfn 0): detach the ${what.split(' ')[0]} and attach it again, or restart ${spec.name}, then move it`,
    });
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
  const strangers = [...placement].filter(([id, p]) => HOTPLUG_PORT_IDS.has(p.bus) && !known.has(id)).map(([id, p]) => `${id} (on ${p.bus})`);
  if (strangers.length > 0) {
    throw new VirtnodeError('INVALID_STATE', `devices: ${spec.name}'s QEMU has ${strangers.join(', ')}, which its record does not have`, {
      field: 'devices',
      hint: 'an attach or detach may not have finished: wait for it, or restart the instance, then move it',
    });
  }
  return { ...spec, disks, nics };
}
