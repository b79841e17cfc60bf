import { describe, expect, it } from 'vitest';
import { planChain } from './offline-chain.ts';

describe("planChain: how an offline move sends a disk's chain", () => {
  it('a disk without a backing file is sent whole', () => {
    expect(planChain('disk0', ['/i/disk0.qcow2'], '/img/tpl.qcow2')).toEqual({ kind: 'whole' });
    expect(planChain('disk0', ['/i/disk0.qcow2'], undefined)).toEqual({ kind: 'whole' });
  });

  it('a linked clone of the image: an overlay of the image, nothing folded', () => {
    expect(planChain('disk0', ['/i/disk0.qcow2', '/img/tpl.qcow2'], '/img/tpl.qcow2')).toEqual({ kind: 'overlay', fold: [] });
  });

  it("a warm launch's disk: an overlay of the template's disk, the warm layer folded in", () => {
    const chain = ['/i/disk0.qcow2', '/t/web/warm/disk.qcow2', '/t/web/disk.qcow2'];
    expect(planChain('disk0', chain, '/t/web/disk.qcow2')).toEqual({ kind: 'overlay', fold: ['/t/web/warm/disk.qcow2'] });
  });

  it('every layer between the disk and the image folds, and nothing under the image', () => {
    const chain = ['/i/d.qcow2', '/a.qcow2', '/b.qcow2', '/img.qcow2', '/under.qcow2'];
    expect(planChain('disk1', chain, '/img.qcow2')).toEqual({ kind: 'overlay', fold: ['/a.qcow2', '/b.qcow2'] });
  });

  it("a chain that does not reach the instance's image is refused, naming disks", () => {
    expect(() => planChain('disk0', ['/i/d.qcow2', '/other.qcow2'], '/img.qcow2')).toThrow(expect.objectContaining({ code: 'HOST_UNSUPPORTED', field: 'disks' }));
    expect(() => planChain('disk0', ['/i/d.qcow2', '/other.qcow2'], undefined)).toThrow(/disk disk0 is an overlay of \/other.qcow2, which is not the instance's image/);
    // The disk itself is never its own base.
    expect(() => planChain('disk0', ['/img.qcow2', '/other.qcow2'], '/img.qcow2')).toThrow(expect.objectContaining({ field: 'disks' }));
  });
});
