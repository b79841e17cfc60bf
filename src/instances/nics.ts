import { VirtnodeError, invalid } from '../lib/errors.ts';
import { HOTPLUG_PORTS, hotplugPortId, nicQueueProps } from '../qemu/argv.ts';
import { deviceAdd, deviceDel, netdevAdd, netdevDel, QMP_EVENTS } from '../qmp/commands.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { transaction } from '../store/db.ts';
import { deleteLink } from '../network/links.ts';
import { tapName, vethPeerName } from '../network/names.ts';
import { driverFor } from './drivers/index.ts';
import { type Instance, type Nic, USER_NETWORK } from './model.ts';
import { resolveNic } from './nic-addresses.ts';
import { validateNicRequests } from './nic-request.ts';
import { observeInstance } from './observe.ts';
import { toQemuNic } from './qemu-spec.ts';
import { runtimePaths } from './runtime.ts';
import type { InstanceService, OperationOptions } from './service.ts';

const QMP_CONNECT_TIMEOUT_MS = 5_000;
const DEVICE_DELETED_TIMEOUT_MS = 30_000;

function live(instance: Instance): boolean {
  return instance.state === 'running' || instance.state === 'paused';
}

async function withQmp<T>(service: InstanceService, instance: Instance, fn: (qmp: QmpConnection) => Promise<T>): Promise<T> {
  const qmp = await QmpConnection.connect(runtimePaths(service.paths.instanceDir(instance.name)).qmp, { timeoutMs: QMP_CONNECT_TIMEOUT_MS });
  try {
    return await fn(qmp);
  } finally {
    qmp.close();
  }
}

/**
 * Adds a NIC on `network` (a managed network, or `user`). Stopped: recorded, present at the next start. Running:
 * hot-plugged on a free PCIe root port (tap made and enslaved first, then netdev_add + device_add); the record is
 * written only once QEMU accepted it, and a failure removes the tap again.
 */
export async function attachNic(service: InstanceService, name: string, network: string, ip: string | undefined, options: OperationOptions = {}): Promise<Nic> {
  const [request] = validateNicRequests([network], ip === undefined ? undefined : [ip], []);
  if (request === undefined) throw invalid('network', '"none" is not a network to attach to');
  return service.locked(name, 'nic attach', options, async () => {
    const instance = await observeInstance(service.core, service.mustGet(name));
    if (['creating', 'deleting', 'starting', 'stopping'].includes(instance.state)) {
      throw new VirtnodeError('INVALID_STATE', `cannot attach a NIC to ${name}: it is ${instance.state}`);
    }
    await service.networks.beforeNics([request.network]);
    const nic = transaction(service.db, () => {
      const index = Math.max(-1, ...instance.nics.map((n) => n.index)) + 1;
      const resolved = resolveNic(service.repo, service.networks, request, { index, mac: service.uniqueMac() }, `instance ${name}`, []);
      service.repo.insertNic(name, resolved);
      return resolved;
    });
    try {
      await service.syncNetworks([nic.network]);
      if (live(instance)) await hotplug(service, { ...instance, nics: [...instance.nics, nic] }, nic);
    } catch (e) {
      service.repo.deleteNic(name, nic.index);
      await service.syncNetworks([nic.network]).catch(() => {});
      throw e;
    }
    return nic;
  });
}

async function hotplug(service: InstanceService, instance: Instance, nic: Nic): Promise<void> {
  if (nic.network === USER_NETWORK) {
    throw invalid('network', 'a user-mode NIC cannot be hot-plugged here', 'stop the instance and attach it then, or use a managed network');
  }
  const driver = driverFor(service.paths, instance);
  if (driver.capabilities.nicLink === 'veth') return plugVeth(service, instance, nic);
  await service.networks.prepareInstance({ ...instance, nics: [nic] });
  const qemuNic = toQemuNic(instance, nic);
  try {
    await withQmp(service, instance, async (qmp) => {
      const queues = qemuNic.backend.kind === 'tap' && (qemuNic.backend.queues ?? 1) > 1 ? { queues: qemuNic.backend.queues! } : {};
      await netdevAdd(qmp, { type: 'tap', id: qemuNic.id, ifname: tapName(instance.uuid, nic.index), script: 'no', downscript: 'no', ...queues });
      let lastError: unknown;
      for (let port = 0; port < HOTPLUG_PORTS; port++) {
        try {
          await deviceAdd(qmp, { driver: 'virtio-net-pci', id: `${qemuNic.id}-dev`, netdev: qemuNic.id, mac: nic.mac, bus: hotplugPortId(port), addr: '0', ...nicQueueProps(qemuNic) });
          return;
        } catch (e) {
          lastError = e; // that root port holds another hot-plugged device (slot 0 taken; QEMU would put it at slot 1, unseen by the guest): try the next
        }
      }
      await netdevDel(qmp, { id: qemuNic.id }).catch(() => {});
      throw new VirtnodeError('CONFLICT', `${instance.name} has no free hot-plug slot (${HOTPLUG_PORTS} PCIe root ports, all used)`, {
        cause: lastError,
        hint: 'detach a hot-plugged device, or stop the instance and attach the NIC offline',
      });
    });
  } catch (e) {
    await deleteLink(tapName(instance.uuid, nic.index)).catch(() => {});
    throw e;
  }
}

/** A container's new NIC: a veth pair on the network's bridge, its peer (with the NIC's MAC) moved in as ethN. */
async function plugVeth(service: InstanceService, instance: Instance, nic: Nic): Promise<void> {
  const driver = driverFor(service.paths, instance);
  if (driver.plugLink === undefined) throw new VirtnodeError('INTERNAL', `driver ${driver.name} has veth NICs but cannot move one in`);
  await service.networks.prepareInstance({ ...instance, nics: [nic] }, { link: 'veth' });
  try {
    await driver.plugLink(instance, vethPeerName(instance.uuid, nic.index), `eth${nic.index}`);
  } catch (e) {
    await deleteLink(tapName(instance.uuid, nic.index)).catch(() => {}); // both ends go with it
    throw e;
  }
}

/** Finds a NIC by MAC or index. */
export function findNic(instance: Instance, which: string): Nic {
  const nic = /^\d+$/.test(which) ? instance.nics.find((n) => n.index === Number(which)) : instance.nics.find((n) => n.mac === which.toLowerCase());
  if (nic === undefined) {
    throw new VirtnodeError('NOT_FOUND', `instance ${instance.name} has no NIC ${which}`, {
      field: 'nic',
      hint: `its NICs: ${instance.nics.map((n) => `${n.index} (${n.mac})`).join(', ') || 'none'}`,
    });
  }
  return nic;
}

/**
 * Removes a NIC. Running: device_del, then wait for QEMU's DEVICE_DELETED (the guest has let go of it), then
 * netdev_del and the tap. NICs plugged at start sit on the root bus, which cannot hot-unplug: those need a stop.
 */
export async function detachNic(service: InstanceService, name: string, which: string, options: OperationOptions = {}): Promise<Nic> {
  return service.locked(name, 'nic detach', options, async () => {
    const instance = await observeInstance(service.core, service.mustGet(name));
    const nic = findNic(instance, which);
    if (['creating', 'deleting', 'starting', 'stopping'].includes(instance.state)) {
      throw new VirtnodeError('INVALID_STATE', `cannot detach a NIC from ${name}: it is ${instance.state}`);
    }
    if (live(instance) && driverFor(service.paths, instance).capabilities.nicLink === 'veth') {
      // Deleting the host end of a veth pair removes the end inside the container too.
      await driverFor(service.paths, instance).unplugLink?.(instance, `eth${nic.index}`);
      if (nic.network !== USER_NETWORK) await deleteLink(tapName(instance.uuid, nic.index));
    } else if (live(instance)) {
      const id = `net${nic.index}`;
      await withQmp(service, instance, async (qmp) => {
        const deleted = qmp.waitForEvent((e) => e.event === QMP_EVENTS.deviceDeleted && e.data?.['device'] === `${id}-dev`, { timeoutMs: DEVICE_DELETED_TIMEOUT_MS });
        deleted.catch(() => {});
        try {
          await deviceDel(qmp, { id: `${id}-dev` });
        } catch (e) {
          throw new VirtnodeError('INVALID_STATE', `NIC ${nic.index} of ${name} cannot be unplugged live (NICs present at start sit on the root bus)`, {
            cause: e,
            hint: `stop ${name} first, then detach it`,
          });
        }
        try {
          await deleted;
        } catch (e) {
          throw new VirtnodeError('TIMEOUT', `the guest in ${name} did not release NIC ${nic.index} within ${DEVICE_DELETED_TIMEOUT_MS / 1000} s`, {
            cause: e,
            hint: 'a guest without PCIe hot-plug support ignores the request; stop it and detach offline',
          });
        }
        await netdevDel(qmp, { id });
      });
      if (nic.network !== USER_NETWORK) await deleteLink(tapName(instance.uuid, nic.index));
    }
    service.repo.deleteNic(name, nic.index);
    await service.syncNetworks([nic.network]);
    return nic;
  });
}
