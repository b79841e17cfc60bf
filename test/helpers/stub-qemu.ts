import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROBE_EXIT_STATUS } from '../../src/host/boot-sector.ts';

/** How the stand-in QEMU behaves once started as the probe: like a working, a hanging or a broken KVM. */
export type StubKvm = 'finishes' | 'hangs' | 'fails';

export interface StubQemu {
  path: string;
  /** One entry per start other than `--version`: its pid and arguments. */
  calls: () => Array<{ pid: number; args: string }>;
}

export const STUB_QEMU_VERSION = '7.2.0';
/** What the `fails` stub prints, as a QEMU without a usable KVM module does. */
export const STUB_FAILS_MESSAGE = 'qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: No such device';

const BEHAVIOUR: Record<StubKvm, string> = {
  finishes: `exit ${PROBE_EXIT_STATUS}`,
  // exec keeps the pid the calls file recorded, so a test can see that the probe's kill reached it.
  hangs: 'exec sleep 60',
  fails: `echo '${STUB_FAILS_MESSAGE}' >&2\nexit 1`,
};

/**
 * Writes an executable stand-in for qemu-system-x86_64 into `dir` (made if needed; one stub of a kind per dir),
 * for the probe seam (the `qemu` option): it answers `--version` like QEMU and otherwise records its call and
 * behaves as `kind` says.
 */
export function stubQemu(dir: string, kind: StubKvm): StubQemu {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `qemu-stub-${kind}`);
  const callsFile = join(dir, `qemu-stub-${kind}.calls`);
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      `if [ "$1" = --version ]; then echo 'QEMU emulator version ${STUB_QEMU_VERSION} (virtnode test stub: ${kind})'; exit 0; fi`,
      `echo "$$ $*" >> '${callsFile}'`,
      BEHAVIOUR[kind],
      '',
    ].join('\n'),
  );
  chmodSync(path, 0o755);
  return {
    path,
    calls: () => {
      let text = '';
      try {
        text = readFileSync(callsFile, 'utf8');
      } catch {
        return [];
      }
      return text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const space = l.indexOf(' ');
          return { pid: Number(l.slice(0, space)), args: l.slice(space + 1) };
        });
    },
  };
}

/** True while a process with this pid exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}
