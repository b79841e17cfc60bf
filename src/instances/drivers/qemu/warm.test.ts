import { describe, expect, it } from 'vitest';
import { buildArgv } from '../../../qemu/argv.ts';
import type { WarmModel } from '../../../templates/model.ts';
import { runtimePaths } from '../../runtime.ts';
import { warmQemuSpec } from './warm.ts';

const model: WarmModel = { qemuVersion: '7.2.22', machine: 'pc-q35-7.2', accel: 'tcg', cpus: 1, memoryMiB: 1024, ramFile: 'memory.ram' };
const launch = (m: WarmModel, incoming: boolean) =>
  buildArgv(warmQemuSpec(m, { name: 'w', uuid: 'u', smbiosUuid: 's', diskPath: '/d.qcow2', paths: runtimePaths('/i/w'), vmgenid: 'g', incoming, ramPath: '/t/warm/memory.ram' }));

describe("a warm state's RAM sizes", () => {
  it('the saving boot and every load use the padding the state recorded', () => {
    for (const incoming of [false, true]) {
      const argv = launch({ ...model, memoryPadKiB: 8 }, incoming);
      expect(argv[argv.indexOf('-m') + 1]).toBe('1048584K');
      expect(argv.find((a) => a.startsWith('memory-backend-file'))).toContain('size=1048584K,mem-path=/t/warm/memory.ram');
    }
  });
  it('a state saved without the field (before virtnode padded) loads unpadded, whatever this host would choose', () => {
    const argv = launch(model, true);
    expect(argv[argv.indexOf('-m') + 1]).toBe('1024M');
    expect(argv.find((a) => a.startsWith('memory-backend-file'))).toContain('size=1024M,');
  });
});
