import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { statePaths } from '../../lib/paths.ts';
import { isAlive, processStartTime } from '../../lib/proc.ts';
import type { Instance } from '../model.ts';
import { toQemuSpec } from '../qemu-spec.ts';
import { allDrivers, driverFor } from './index.ts';

const root = mkdtempSync(join(tmpdir(), 'virtnode-drivers-'));
const paths = statePaths(root);
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function instance(name: string, fields: Partial<Instance> = {}): Instance {
  mkdirSync(paths.instanceDir(name), { recursive: true });
  return {
    name,
    type: 'vm',
    uuid: '6f1d3c52-0000-4000-8000-000000000001',
    smbiosUuid: '6f1d3c52-0000-4000-8000-000000000002',
    state: 'running',
    stateReason: undefined,
    spec: { cpus: 1, memoryMiB: 64, accel: 'tcg', disks: [] },
    nics: [],
    pid: undefined,
    pidStart: undefined,
    createdAt: '2025-01-01T00:00:00Z',
    updatedAt: '2025-01-01T00:00:00Z',
    ...fields,
  };
}

/** A live process that is not anyone's QEMU. */
async function bystander(): Promise<{ pid: number; start: string }> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  children.push(child);
  await new Promise((resolve) => child.once('spawn', resolve));
  return { pid: child.pid!, start: processStartTime(child.pid!)! };
}

describe('instance drivers', () => {
  it('each driver is registered once, and an instance gets the QEMU driver', () => {
    const names = allDrivers(paths).map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    const driver = driverFor(paths, instance('vm1'));
    expect(names).toContain(driver.name);
    expect(driver.name).toBe('qemu');
    expect(driver.capabilities.snapshots).toBe(true);
  });

  it('QEMU: the console endpoints are the sockets and log QEMU is told to create', () => {
    const vm = instance('vm2');
    const told = toQemuSpec(vm, paths.instanceDir('vm2'), 'tcg').paths;
    expect(driverFor(paths, vm).consoles(vm)).toEqual({ serial: told.serial, serialLog: told.serialLog, vnc: told.vnc });
  });

  it("QEMU: a recorded process that is not the instance's QEMU is observed gone, with QEMU's last message", async () => {
    const other = await bystander();
    const vm = instance('vm3', { pid: other.pid, pidStart: other.start });
    writeFileSync(join(paths.instanceDir('vm3'), 'qemu.log'), '2025-01-01T00:00:00.000000Z qemu-system-x86_64: terminating on signal 9\n');
    expect(await driverFor(paths, vm).observe(vm)).toEqual({
      state: 'gone',
      reason: `QEMU (pid ${other.pid}) exited without a guest shutdown: it was killed or crashed (last QEMU message: terminating on signal 9)`,
    });
  });

  it('QEMU: never finds, kills or adopts a process that is not the QEMU of that instance or directory', async () => {
    const other = await bystander();
    const vm = instance('vm4', { pid: other.pid, pidStart: other.start });
    const dir = paths.instanceDir('vm4');
    writeFileSync(join(dir, 'qemu.pid'), `${other.pid}\n`);
    const driver = driverFor(paths, vm);
    expect(driver.find(vm)).toBeUndefined();
    await driver.kill(vm);
    await driver.killOrphan(dir);
    await driver.killOrphan(dir, other.pid);
    expect(isAlive(other)).toBe(true);
    expect(driver.findOrphans(paths.instances, new Set()).map((o) => o.pid)).not.toContain(other.pid);
  });
});
