import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSeed } from '../../src/cloudinit/seed.ts';
import { run, type RunResult } from '../../src/exec/run.ts';
import { debianImage } from '../helpers/debian-image.ts';

/**
 * Firmware boot of the built image under TCG: SeaBIOS → EXTLINUX → Debian kernel → systemd → cloud-init reading a
 * NoCloud ISO seed, then SSH in over user-mode networking (inside the suite's network namespace) and look around.
 */
const CLOUD_INIT_DEADLINE_MS = 300_000;
const SSH_DEADLINE_MS = 120_000;
const POLL_MS = 1_000;
const HOSTNAME = 'vn-test';
const USER = 'vn';

let dir = '';
let key = '';
let port = 0;
let serialLog = '';
const qemu = new AbortController();
let qemuExit: Promise<unknown> | undefined;
const timings: Record<string, number> = {};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function serial(): Promise<string> {
  return readFile(serialLog, 'utf8').catch(() => '');
}

function ssh(command: string, timeoutMs = 30_000): Promise<RunResult> {
  return run(
    [
      'ssh',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'ConnectTimeout=10',
      '-o', 'LogLevel=ERROR',
      '-i', key,
      '-p', String(port),
      `${USER}@127.0.0.1`,
      command,
    ],
    { timeoutMs },
  );
}

beforeAll(async () => {
  const image = debianImage();
  dir = await mkdtemp(join(tmpdir(), 'virtnode-image-boot-'));
  key = join(dir, 'id_ed25519');
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'virtnode-e2e', '-f', key], { timeoutMs: 10_000 });
  const publicKey = (await readFile(`${key}.pub`, 'utf8')).trim();
  const seed = join(dir, 'seed.iso');
  await buildSeed(
    seed,
    {
      'meta-data': `instance-id: iid-${Date.now()}\nlocal-hostname: ${HOSTNAME}\n`,
      'user-data': [
        '#cloud-config',
        'users:',
        `  - name: ${USER}`,
        '    groups: [sudo]',
        '    shell: /bin/bash',
        '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
        '    lock_passwd: true',
        `    ssh_authorized_keys: ["${publicKey}"]`,
        'timezone: Europe/Berlin',
        'locale: en_US.UTF-8',
        'write_files:',
        '  - path: /etc/vn-marker',
        '    content: "write-files-ok\\n"',
        "    permissions: '0644'",
        'runcmd:',
        "  - [sh, -c, 'echo runcmd-ok > /var/tmp/vn-runcmd']",
        '',
      ].join('\n'),
    },
    { format: 'iso' },
  );
  const overlay = join(dir, 'overlay.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, overlay], { timeoutMs: 10_000 });
  port = await freePort();
  serialLog = join(dir, 'serial.log');
  const started = Date.now();
  qemuExit = run(
    [
      'qemu-system-x86_64',
      '-machine', 'q35',
      '-accel', 'tcg',
      '-m', '1024',
      '-smp', '2',
      '-nodefaults',
      '-no-user-config',
      '-display', 'none',
      '-drive', `file=${overlay},if=none,id=d0,format=qcow2`,
      '-device', 'virtio-blk-pci,drive=d0,bootindex=0',
      '-drive', `file=${seed},if=none,id=s0,format=raw,readonly=on`,
      '-device', 'virtio-blk-pci,drive=s0',
      '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`,
      '-device', 'virtio-net-pci,netdev=n0',
      '-chardev', `socket,id=s,path=${join(dir, 'serial.sock')},server=on,wait=off,logfile=${serialLog}`,
      '-serial', 'chardev:s',
    ],
    { signal: qemu.signal, timeoutMs: CLOUD_INIT_DEADLINE_MS + SSH_DEADLINE_MS + 120_000 },
  ).then(
    (r) => ({ exited: r }),
    (e: unknown) => ({ error: e }),
  );

  let exited: unknown;
  void qemuExit.then((r) => (exited = r));
  const deadline = started + CLOUD_INIT_DEADLINE_MS;
  for (;;) {
    const log = await serial();
    if (timings['kernelMs'] === undefined && /Linux version/.test(log)) timings['kernelMs'] = Date.now() - started;
    if (/Cloud-init v\. \S+ finished at/.test(log)) break;
    if (exited !== undefined) throw new Error(`QEMU exited early: ${JSON.stringify(exited)}\n${log.slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`cloud-init did not finish within ${CLOUD_INIT_DEADLINE_MS} ms:\n${log.slice(-3000)}`);
    await sleep(POLL_MS);
  }
  timings['cloudInitDoneMs'] = Date.now() - started;
  const sshDeadline = Date.now() + SSH_DEADLINE_MS;
  for (;;) {
    try {
      await ssh('true');
      break;
    } catch (error) {
      if (Date.now() > sshDeadline) throw error;
      await sleep(2_000);
    }
  }
  timings['sshMs'] = Date.now() - started;
  console.log(`image-boot-debian timings (ms since QEMU start): ${JSON.stringify(timings)}`);
}, CLOUD_INIT_DEADLINE_MS + SSH_DEADLINE_MS + 60_000);

afterAll(async () => {
  qemu.abort();
  await qemuExit;
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('Debian 12 image, firmware boot with a NoCloud seed', () => {
  it('booted through EXTLINUX and the serial console works', async () => {
    const log = await serial();
    expect(log).toMatch(/Linux version/);
    expect(log).toMatch(/root=LABEL=root/);
    expect(log).toMatch(/login:/); // serial getty on ttyS0
  });

  it('took its hostname from the seed', async () => {
    expect((await ssh('hostname')).stdout.trim()).toBe(HOSTNAME);
  });

  it('cloud-init is done, without errors, from DataSourceNoCloud', async () => {
    const status = await ssh('cloud-init status --long');
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloud/);
    const result = JSON.parse((await ssh('cat /run/cloud-init/result.json')).stdout) as {
      v1: { datasource: string; errors: unknown[] };
    };
    expect(result.v1.errors).toEqual([]);
    expect(result.v1.datasource).toMatch(/DataSourceNoCloud/);
  });

  it('got a fresh machine-id and its own SSH host keys', async () => {
    expect((await ssh('cat /etc/machine-id')).stdout.trim()).toMatch(/^[0-9a-f]{32}$/);
    expect((await ssh('ls /etc/ssh')).stdout).toMatch(/ssh_host_ed25519_key\.pub/);
  });

  it('ran write_files and runcmd, applied timezone and locale, grants sudo', async () => {
    expect((await ssh('cat /etc/vn-marker')).stdout).toBe('write-files-ok\n');
    expect((await ssh('cat /var/tmp/vn-runcmd')).stdout).toBe('runcmd-ok\n');
    expect((await ssh('readlink /etc/localtime')).stdout).toMatch(/Europe\/Berlin/);
    expect((await ssh('cat /etc/default/locale')).stdout).toMatch(/en_US\.UTF-8/);
    expect((await ssh('sudo -n id -u')).stdout.trim()).toBe('0');
  });

  it('booted with no failed units; sshd active; qemu-ga installed (it starts when a guest-agent port exists)', async () => {
    const failed = await ssh('systemctl --failed --no-legend --plain');
    expect(failed.stdout.trim()).toBe('');
    expect((await ssh('systemctl is-active ssh')).stdout.trim()).toBe('active');
    expect((await ssh('ls /usr/sbin/qemu-ga')).stdout.trim()).toBe('/usr/sbin/qemu-ga');
  });

  it('brought the virtio NIC up with DHCP', async () => {
    const addr = await ssh('ip -4 -o addr show scope global');
    expect(addr.stdout).toMatch(/inet 10\.0\.2\.15\//);
    expect((await ssh('ip route show default')).stdout).toMatch(/default via 10\.0\.2\.2/);
  });
});
