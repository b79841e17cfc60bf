import { describe, expect, it } from 'vitest';
import { mountPointsUnder } from './layer.ts';

const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '90 22 7:0 / /var/lib/virtnode/instances/web/disk rw,noatime - ext4 /dev/loop0 rw',
  '91 22 7:1 / /var/lib/virtnode/instances/web/disk.new rw,noatime - ext4 /dev/loop1 rw',
  '92 22 7:2 / /var/lib/virtnode/instances/web2/disk rw,noatime - ext4 /dev/loop2 rw',
  '93 90 0:50 / /var/lib/virtnode/instances/web/disk/a\\040b rw - tmpfs tmpfs rw',
  '',
].join('\n');

describe('mount points of a container layer', () => {
  it('finds the point and what is below it, deepest first, never a sibling with the same prefix', () => {
    expect(mountPointsUnder(MOUNTINFO, '/var/lib/virtnode/instances/web/disk')).toEqual([
      '/var/lib/virtnode/instances/web/disk/a b',
      '/var/lib/virtnode/instances/web/disk',
    ]);
    expect(mountPointsUnder(MOUNTINFO, '/var/lib/virtnode/instances/web')).toHaveLength(3);
    expect(mountPointsUnder(MOUNTINFO, '/var/lib/virtnode/instances/web3')).toEqual([]);
  });
});
