/**
 * The fault tier, part 1: `virtnode` killed with SIGKILL at every failpoint of every operation (the lists in
 * src/lib/failpoint.ts, so a new step is tried as soon as it has a point). After each crash, `virtnode reconcile`
 * must leave nothing orphaned or half made (test/helpers/state-audit.ts), nothing lost (the source's data reads
 * back, its images pass qemu-img check), and the same operation must then succeed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILPOINTS, type FailpointName, type FailpointOperation } from '../../src/lib/failpoint.ts';
import { type CliResult, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { auditState, readRows } from '../helpers/state-audit.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const BOOT_TIMEOUT_MS = 90_000;
const CASE_TIMEOUT_MS = 120_000;

/** One operation as the fault tier runs it: made ready, crashed, checked, retried, tidied. */
interface Scenario {
  /** Before each crash: whatever the operation needs. */
  before?: (point: FailpointName) => Promise<void>;
  args: (point: FailpointName) => string[];
  /** After the crash and the reconcile: what must be there (nothing lost, the right side of the crash). */
  intact: (point: FailpointName) => Promise<void>;
  /** The same operation again, which must succeed (or the check that the reconcile already finished it). */
  retry: (point: FailpointName) => Promise<void>;
  /**
   * Retried only after the last point: every crash leaves the same thing to retry from (no record of the new
   * instance, the source as it was, which the audit and `intact` check at every point), and each retry seals a
   * disk in the sealing appliance, which costs a boot.
   */
  retryAfterLastOnly?: boolean;
  /** Back to the state `before` expects. */
  after?: (point: FailpointName) => Promise<void>;
}

const { home, cleanup } = tempHome('virtnode-faults-');
const work = mkdtempSync(join(tmpdir(), 'virtnode-faults-work-'));

async function ok(args: string[], timeoutMs = CASE_TIMEOUT_MS): Promise<CliResult> {
  const r = await virtnode(home, args, { timeoutMs });
  expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

const instance = (name: string) => readRows(home).instances.find((i) => i.name === name);
const snapshot = (inst: string, name: string) => readRows(home).snapshots.find((s) => s.instance === inst && s.name === name);
const topOf = (name: string) => instance(name)!.spec.disks[0]!.path;

/** Writes a byte pattern at the start of a disk (through its whole chain; the disk must not be in use). */
function writePattern(disk: string, byte: number): void {
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P ${byte} 0 64k`, disk], { stdio: 'ignore' });
}

/** Reads the pattern back through the disk's chain (without QEMU's lock: the disk may be in use). */
function expectPattern(disk: string, byte: number): void {
  const out = execFileSync('qemu-io', ['-r', '-U', '-f', 'qcow2', '-c', `read -P ${byte} 0 64k`, disk], { encoding: 'utf8' });
  expect(out, `${disk} should hold pattern ${byte}`).not.toContain('Pattern verification failed');
}

function internalSnapshots(disk: string): string[] {
  const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })) as { snapshots?: Array<{ name: string }> };
  return (info.snapshots ?? []).map((s) => s.name);
}

async function deleteIfThere(name: string): Promise<void> {
  if (instance(name) !== undefined) await ok(['delete', '--force', name]);
}

const launchPoints = FAILPOINTS.launch as readonly FailpointName[];
/** Where a crashed launch leaves its instance after reconcile: nothing until it is defined, then its state. */
function launchedState(point: FailpointName): string | undefined {
  const at = launchPoints.indexOf(point);
  if (at < launchPoints.indexOf('launch.after-define')) return undefined;
  if (point === 'launch.after-define') return 'defined';
  return at < launchPoints.indexOf('start.after-cont') ? 'stopped' : 'running';
}

const exportTarget = (point: string, suffix = '') => join(work, `out-${point}${suffix}.qcow2`);

const SCENARIOS: Record<FailpointOperation, Scenario> = {
  launch: {
    // With a readiness timeout: a point never reached ends in an error exit, not in a wait for SSH.
    args: () => ['launch', 'tpl', '--name', 'lx', '--memory', '128M', '--timeout', '20'],
    intact: async (point) => {
      expect(instance('lx')?.state).toBe(launchedState(point));
    },
    retry: async (point) => {
      const state = launchedState(point);
      if (state === undefined) await ok(['launch', 'tpl', '--name', 'lx', '--memory', '128M', '--no-wait']);
      else if (state !== 'running') await ok(['start', 'lx']);
      expect(instance('lx')?.state).toBe('running');
      if (point === 'launch.after-boot') await waitForText(join(home, 'instances', 'lx', 'console.log'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    },
    after: () => deleteIfThere('lx'),
  },
  'clone-full': {
    args: () => ['clone', 'src', 'cf'],
    intact: async () => {
      expect(instance('cf')).toBeUndefined();
      expect(instance('src')?.state).toBe('defined');
      expectPattern(topOf('src'), 0x5a);
    },
    retry: async () => {
      await ok(['clone', 'src', 'cf']);
      expectPattern(topOf('cf'), 0x5a);
    },
    retryAfterLastOnly: true,
    after: () => deleteIfThere('cf'),
  },
  'clone-linked': {
    args: () => ['clone', 'src', 'cl', '--linked'],
    intact: async () => {
      expect(instance('cl')).toBeUndefined();
      expect(instance('src')?.state).toBe('defined');
      expectPattern(topOf('src'), 0x5a);
    },
    retry: async () => {
      await ok(['clone', 'src', 'cl', '--linked']);
      expectPattern(topOf('cl'), 0x5a);
      expectPattern(topOf('src'), 0x5a);
    },
    retryAfterLastOnly: true,
    after: () => deleteIfThere('cl'),
  },
  'snapshot-create-internal': {
    args: () => ['snapshot', 'create', 'snap', 'si'],
    intact: async (point) => {
      const taken = point === 'snapshot.after-take';
      expect(snapshot('snap', 'si')?.state).toBe(taken ? 'ready' : undefined);
      expect(internalSnapshots(topOf('snap')).includes('si')).toBe(taken);
    },
    retry: async () => {
      if (snapshot('snap', 'si') === undefined) await ok(['snapshot', 'create', 'snap', 'si']);
      expect(internalSnapshots(topOf('snap'))).toContain('si');
    },
    after: async () => {
      await ok(['snapshot', 'rm', 'snap', 'si']);
    },
  },
  'snapshot-create-external': {
    args: () => ['snapshot', 'create', 'live', 'se', '--disk-only'],
    intact: async (point) => {
      expect(snapshot('live', 'se')?.state).toBe(point === 'snapshot.after-take' ? 'ready' : undefined);
      expect(instance('live')?.state).toBe('running');
    },
    retry: async () => {
      if (snapshot('live', 'se') === undefined) await ok(['snapshot', 'create', 'live', 'se', '--disk-only']);
      expect(topOf('live')).toBe(snapshot('live', 'se')!.disks[0]!.overlay);
    },
    after: async () => {
      await ok(['snapshot', 'rm', 'live', 'se']);
      expect(topOf('live')).toBe(join(home, 'instances', 'live', 'disk0.qcow2'));
    },
  },
  'snapshot-revert-internal': {
    before: async () => writePattern(topOf('snap'), 0x22),
    args: () => ['snapshot', 'revert', 'snap', 'r1'],
    intact: async () => {
      expect(snapshot('snap', 'r1')?.state).toBe('ready');
      expect(internalSnapshots(topOf('snap'))).toContain('r1');
    },
    retry: async () => {
      await ok(['snapshot', 'revert', 'snap', 'r1']);
      expectPattern(topOf('snap'), 0x11);
    },
  },
  'snapshot-revert-external': {
    before: async () => writePattern(topOf('ext'), 0x22),
    args: () => ['snapshot', 'revert', 'ext', 'e1'],
    intact: async () => {
      expect(snapshot('ext', 'e1')?.state).toBe('ready');
      // Either side of the switch: the old top with its writes, or a fresh overlay on the snapshot.
      const top = topOf('ext');
      expect(execFileSync('qemu-img', ['info', '-U', '--output=json', top], { encoding: 'utf8' })).toContain(snapshot('ext', 'e1')!.disks[0]!.file);
    },
    retry: async () => {
      await ok(['snapshot', 'revert', 'ext', 'e1']);
      expectPattern(topOf('ext'), 0x11);
    },
  },
  'snapshot-delete-internal': {
    before: async () => {
      await ok(['snapshot', 'create', 'snap', 'di']);
    },
    args: () => ['snapshot', 'rm', 'snap', 'di'],
    intact: async () => {
      expect(snapshot('snap', 'r1')?.state).toBe('ready');
      expect(internalSnapshots(topOf('snap'))).toContain('r1');
    },
    // The reconcile finished the delete: it is gone from the database and from the disk.
    retry: async () => {
      expect(snapshot('snap', 'di')).toBeUndefined();
      expect(internalSnapshots(topOf('snap'))).not.toContain('di');
    },
  },
  'snapshot-delete-external': {
    before: async () => {
      await ok(['snapshot', 'create', 'live', 'de', '--disk-only']);
    },
    args: () => ['snapshot', 'rm', 'live', 'de'],
    intact: async () => {
      expect(instance('live')?.state).toBe('running');
    },
    retry: async () => {
      expect(snapshot('live', 'de')).toBeUndefined();
      expect(topOf('live')).toBe(join(home, 'instances', 'live', 'disk0.qcow2'));
    },
  },
  'volume-create': {
    args: () => ['volume', 'create', 'vc', '--size', '1M'],
    intact: async () => {
      expect(readRows(home).volumes.map((v) => v.name)).not.toContain('vc');
    },
    retry: async () => {
      await ok(['volume', 'create', 'vc', '--size', '1M']);
    },
    after: async () => {
      await ok(['volume', 'rm', 'vc']);
    },
  },
  'volume-export': {
    args: (point) => ['volume', 'export', 'vol', exportTarget(point)],
    intact: async (point) => {
      // No scratch left beside the target; the target is either whole or absent.
      expect(readdirSync(work).filter((f) => f.startsWith('.'))).toEqual([]);
      if (point === 'export.after-link') expectPattern(exportTarget(point), 0x33);
      else expect(existsSync(exportTarget(point))).toBe(false);
      expectPattern(readRows(home).volumes.find((v) => v.name === 'vol')!.path, 0x33);
    },
    retry: async (point) => {
      // An export never overwrites: after a crash that left the whole file, the retry goes to a new name.
      const target = exportTarget(point, point === 'export.after-link' ? '-again' : '');
      await ok(['volume', 'export', 'vol', target]);
      expectPattern(target, 0x33);
    },
  },
  'template-create': {
    before: async () => {
      await ok(['create', 'tc', '--disk-size', '16M', ...bootArgs]);
      writePattern(topOf('tc'), 0x44);
    },
    args: () => ['template', 'create', 'tc', 'tcp'],
    intact: async (point) => {
      const recorded = point === 'template.after-record';
      const template = readRows(home).templates.find((t) => t.name === 'tcp');
      expect(template !== undefined).toBe(recorded);
      expect(instance('tc') === undefined).toBe(recorded);
      expectPattern(recorded ? template!.disk_path : topOf('tc'), 0x44);
    },
    retry: async (point) => {
      if (point !== 'template.after-record') await ok(['template', 'create', 'tc', 'tcp']);
      expectPattern(readRows(home).templates.find((t) => t.name === 'tcp')!.disk_path, 0x44);
    },
    after: async () => {
      await ok(['template', 'rm', 'tcp']);
    },
  },
  delete: {
    before: async () => {
      await ok(['create', 'dx', ...bootArgs, '--start']);
    },
    args: () => ['delete', '--force', 'dx'],
    intact: async () => {
      expect(instance('dx')).toBeUndefined();
    },
    retry: async () => {
      expect((await virtnode(home, ['info', 'dx'])).code).toBe(3); // finished by the reconcile
    },
  },
};

describe('SIGKILL of virtnode at every failpoint, then reconcile (tiny guest, TCG)', () => {
  beforeAll(async () => {
    // src: the source of clones; tpl: the template launches come from; snap/ext: stopped instances with an
    // internal / external snapshot; live: a running guest; vol: a volume with data.
    await ok(['create', 'src', '--disk-size', '16M', ...bootArgs]);
    writePattern(topOf('src'), 0x5a);
    await ok(['create', 'tsrc', '--disk-size', '16M', ...bootArgs]);
    await ok(['template', 'create', 'tsrc', 'tpl']);
    await ok(['create', 'snap', '--disk-size', '16M', ...bootArgs]);
    writePattern(topOf('snap'), 0x11);
    await ok(['snapshot', 'create', 'snap', 'r1']);
    await ok(['create', 'ext', '--disk-size', '16M', ...bootArgs]);
    writePattern(topOf('ext'), 0x11);
    await ok(['snapshot', 'create', 'ext', 'e1', '--external']);
    await ok(['create', 'live', '--disk-size', '16M', ...bootArgs, '--start']);
    await waitForText(join(home, 'instances', 'live', 'console.log'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    await ok(['volume', 'create', 'vol', '--size', '16M']);
    writePattern(readRows(home).volumes.find((v) => v.name === 'vol')!.path, 0x33);
    expect(auditState(home)).toEqual([]);
  }, 180_000);

  afterAll(() => {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  describe.each(Object.keys(FAILPOINTS) as FailpointOperation[])('%s', (operation) => {
    const scenario = SCENARIOS[operation];
    it.each([...FAILPOINTS[operation]] as FailpointName[])('killed at %s: reconciled, nothing orphaned or lost, and the retry succeeds', async (point) => {
      await scenario.before?.(point);
      const crashed = await virtnode(home, scenario.args(point), { env: { VIRTNODE_FAILPOINT: point }, timeoutMs: CASE_TIMEOUT_MS * 2 });
      expect(crashed.signal, `the point was not reached:\n${crashed.stdout}\n${crashed.stderr}`).toBe('SIGKILL');
      await ok(['reconcile']);
      expect(auditState(home)).toEqual([]);
      await scenario.intact(point);
      if (!scenario.retryAfterLastOnly || point === FAILPOINTS[operation].at(-1)) await scenario.retry(point);
      await scenario.after?.(point);
      expect(auditState(home)).toEqual([]);
    }, CASE_TIMEOUT_MS * 3);
  });
});
