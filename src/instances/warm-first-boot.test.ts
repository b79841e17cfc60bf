import { describe, expect, it } from 'vitest';
import { parseCloudInitStatus } from './readiness.ts';
import { describeFirstBoot, type WarmFirstBootResult } from './warm-first-boot.ts';

// What warm-first-boot.py's verdict() writes on Debian 12's cloud-init 22.4 (the shape `cloud-init status --long` prints).
const DONE = 'status: done\nboot_status_code: enabled-by-generator\nlast_update: Sat, 05 Dec 2026 16:40:01 +0000\ndetail:\nDataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]\n';
const ERROR =
  'status: error\nboot_status_code: enabled-by-generator\ndetail:\n(\'write_files\', KeyError(\'path\'))\nerrors:\n\t- (\'write_files\', KeyError(\'path\'))\n';

describe("the warm first boot's report", () => {
  it("gives cloud-init's verdict as the cold path reads it over SSH", () => {
    expect(parseCloudInitStatus(DONE)).toEqual({ status: 'done', datasource: 'NoCloud', detail: 'DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]' });
    const failed = parseCloudInitStatus(ERROR);
    expect(failed.status).toBe('error');
    expect(failed.detail).toContain("KeyError('path')");
  });

  it('says in the booting line how long each step and the slowest modules took', () => {
    const first: WarmFirstBootResult = {
      machineId: '0'.repeat(32),
      failedStages: [],
      cloudInit: parseCloudInitStatus(DONE),
      steps: { prepare: 0.4, 'init-local': 3.25, 'modules-config': 10 },
      slowest: [
        ['modules-config/config-set-passwords', 6.5],
        ['init-network/config-users-groups', 2.04],
      ],
      ms: 21_340,
    };
    expect(describeFirstBoot(first)).toBe(
      'first boot through the guest agent in 21.3 s: clock, machine-id, entropy, cloud-init (prepare 0.4 s, init-local 3.3 s, modules-config 10.0 s); ' +
        'slowest: modules-config/config-set-passwords 6.5 s, init-network/config-users-groups 2.0 s',
    );
    expect(describeFirstBoot({ ...first, steps: { prepare: 0.4 }, slowest: [], commands: { count: 12, seconds: 1.84, slowest: [['useradd virtnode', 0.42], ['hostname w1', 0.1]] } })).toBe(
      'first boot through the guest agent in 21.3 s: clock, machine-id, entropy, cloud-init (prepare 0.4 s); 12 commands in 1.8 s (useradd virtnode 0.4 s, hostname w1 0.1 s)',
    );
    expect(describeFirstBoot({ ...first, steps: {}, slowest: [], failedStages: ['modules --mode=final'] })).toBe(
      'first boot through the guest agent in 21.3 s: clock, machine-id, entropy, cloud-init; stages with errors: modules --mode=final',
    );
  });
});
