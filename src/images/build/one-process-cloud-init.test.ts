import { lstat, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ONE_PROCESS_CLOUD_INIT_FLAG } from '../boot/extlinux.ts';
import { recipeKey } from './build-image.ts';
import {
  CLOUD_INIT_UNITS,
  GUEST_PROGRAM_DIR,
  GUEST_PROGRAMS,
  guestProgramsDigest,
  installOneProcessCloudInit,
  ONE_PROCESS_UNITS,
  oneProcessUnits,
} from './one-process-cloud-init.ts';
import { RECIPES } from './recipes.ts';

/** `Key=value` lines of a unit's text, by key (every value, in order; space-separated lists split). */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m === null) continue;
    const values = m[1] === 'ExecStart' || m[1]!.startsWith('Condition') ? [m[2]!] : m[2]!.split(/\s+/);
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), ...values]);
  }
  return out;
}

describe('one-process cloud-init units', () => {
  const units = oneProcessUnits();
  const server = directives(units['virtnode-cloud-init.service']);
  const network = directives(units['virtnode-cloud-init-network.service']);
  const final = directives(units['virtnode-cloud-final.service']);

  it('run only when virtnode boots the image (its kernel flag), in cloud-init.target', () => {
    for (const unit of ONE_PROCESS_UNITS) {
      const d = directives(units[unit]);
      expect(d.get('ConditionKernelCommandLine')).toEqual([ONE_PROCESS_CLOUD_INIT_FLAG]);
      expect(d.get('WantedBy')).toEqual(['cloud-init.target']);
    }
  });

  it('the local stage where cloud-init-local.service runs: before the network is configured and before sysinit', () => {
    expect(server.get('Type')).toEqual(['notify']);
    expect(server.get('DefaultDependencies')).toEqual(['no']);
    expect(server.get('Before')).toEqual(expect.arrayContaining(['network-pre.target', 'sysinit.target']));
    expect(server.get('ExecStart')).toEqual([`/usr/bin/python3 ${GUEST_PROGRAM_DIR}/cold-first-boot.py`]);
  });

  it('the network stage after ifupdown and before sshd (which needs the host keys it writes), asked of the one process', () => {
    expect(network.get('After')).toEqual(expect.arrayContaining(['virtnode-cloud-init.service', 'networking.service']));
    expect(network.get('Before')).toEqual(expect.arrayContaining(['sshd.service', 'network-online.target', 'sysinit.target', 'systemd-user-sessions.service']));
    expect(network.get('BindsTo')).toEqual(['virtnode-cloud-init.service']);
    expect(network.get('ExecStart')![0]).toMatch(/^\/bin\/sh -c 'echo network > \/run\/virtnode-cloud-init\/request && read code < \/run\/virtnode-cloud-init\/network\.done && exit "\$\$code"'$/);
  });

  it('the final stage after the rest of the boot', () => {
    expect(final.get('After')).toEqual(expect.arrayContaining(['multi-user.target', 'network-online.target', 'virtnode-cloud-init-network.service']));
    expect(final.get('ExecStart')![0]).toContain('echo final > /run/virtnode-cloud-init/request');
  });

  it('installs the programs, enables the units and skips cloud-init\'s own units under the flag (only there)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'virtnode-one-process-'));
    try {
      await installOneProcessCloudInit(root);
      for (const file of GUEST_PROGRAMS) {
        const name = file.slice(file.lastIndexOf('/') + 1);
        expect(await readFile(join(root, GUEST_PROGRAM_DIR, name), 'utf8')).toBe(await readFile(file, 'utf8'));
      }
      for (const unit of ONE_PROCESS_UNITS) {
        expect(await readFile(join(root, 'etc/systemd/system', unit), 'utf8')).toBe(units[unit]);
        expect(await readlink(join(root, 'etc/systemd/system/cloud-init.target.wants', unit))).toBe(`/etc/systemd/system/${unit}`);
      }
      for (const unit of CLOUD_INIT_UNITS) {
        const dropIn = await readFile(join(root, 'etc/systemd/system', `${unit}.d`, 'virtnode-one-process.conf'), 'utf8');
        expect(directives(dropIn).get('ConditionKernelCommandLine')).toEqual([`!${ONE_PROCESS_CLOUD_INIT_FLAG}`]);
      }
      expect((await lstat(join(root, 'etc/systemd/system/cloud-init.target.wants'))).isDirectory()).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('the recipe', () => {
  it('has one-process cloud-init, and its programs are part of the recipe key', () => {
    expect(RECIPES['debian-12'].oneProcessCloudInit).toBe(true);
    expect(guestProgramsDigest()).toMatch(/^[0-9a-f]{64}$/);
    expect(GUEST_PROGRAMS).toEqual(expect.arrayContaining(['src/instances/cold-first-boot.py', 'src/instances/first_boot_common.py']));
    const recipe = RECIPES['debian-12'];
    const withIt = recipeKey('debian-12');
    (recipe as { oneProcessCloudInit: boolean }).oneProcessCloudInit = false;
    try {
      expect(recipeKey('debian-12')).not.toBe(withIt);
    } finally {
      (recipe as { oneProcessCloudInit: boolean }).oneProcessCloudInit = true;
    }
  });
});
