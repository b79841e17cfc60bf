import type { StatePaths } from '../../lib/paths.ts';
import type { DriverName, InstanceDriver } from '../driver.ts';
import type { Instance } from '../model.ts';
import { LxcDriver } from './lxc/driver.ts';
import { QemuDriver } from './qemu/driver.ts';

/** Every driver, by name: a second instance type (LXC system containers) is one more entry. */
const DRIVERS: { readonly [N in DriverName]: (paths: StatePaths) => InstanceDriver } = {
  qemu: (paths) => new QemuDriver(paths),
  lxc: (paths) => new LxcDriver(paths),
};

/** Which driver runs an instance: its recorded type (a VM runs in QEMU, a system container in LXC). */
export function driverName(instance: Instance): DriverName {
  return instance.type === 'container' ? 'lxc' : 'qemu';
}

export function driverFor(paths: StatePaths, instance: Instance): InstanceDriver {
  return DRIVERS[driverName(instance)](paths);
}

/** All drivers (reconciliation asks each for the processes of instances that have no record). */
export function allDrivers(paths: StatePaths): InstanceDriver[] {
  return Object.values(DRIVERS).map((make) => make(paths));
}
