import { describe, expect, it } from 'vitest';
import type { Network } from '../../network/model.ts';
import { formatIssues, parseStackFiles } from './locate.ts';
import { type StackContext, validateStack } from './validate.ts';

const existing: Network = { name: 'old', id: 'x', mode: 'nat', bridge: 'vnbx', ipv4: { subnet: '10.9.0.0/24', gateway: '10.9.0.1', dhcpStart: '10.9.0.2', dhcpEnd: '10.9.0.254' }, domain: 'old.internal', createdAt: '' };
const context = (extra: Partial<StackContext> = {}): StackContext => ({
  stack: 's',
  limits: { cpus: 4, memoryBytes: 8 * 2 ** 30 },
  networks: [existing],
  routes: [],
  bridgeExists: () => false,
  imageExists: (n) => n === 'debian-12',
  templateExists: (n) => n === 'tpl-old',
  instanceExists: (n) => n === 'golden',
  fileReadable: (p) => p === '/boot/k' || p === '/srv/disk.qcow2',
  pools: ['default'],
  volumes: [],
  owners: new Map(),
  ...extra,
});
const check = (text: string, ctx = context()) => {
  const { docs, issues } = parseStackFiles([{ path: 'stack.yaml', text }]);
  const result = validateStack(docs, ctx);
  return { ...result, text: formatIssues([...issues, ...result.issues]) };
};

describe('validateStack', () => {
  it('normalizes a good stack: defaults filled in, units parsed', () => {
    const r = check(`kind: network
name: lab
subnet: 10.10.0.0/24
---
kind: volume
name: data
size: 1G
---
kind: instance
name: web
kernel: /boot/k
memory: 0.25G
nics: [{network: user}, {network: lab, ip: 10.10.0.7}]
volumes: [data]
ports: ["8080:80"]
`);
    expect(r.text).toBe('');
    const web = r.desired.find((d) => d.name === 'web')!;
    expect(web).toMatchObject({ kind: 'instance', state: 'running', cpus: 1, memoryMiB: 256, accel: 'auto', volumes: ['data'], ports: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 }] });
    expect(r.desired.find((d) => d.name === 'data')).toMatchObject({ sizeBytes: 2 ** 30, format: 'qcow2', pool: 'default' });
  });

  it('a network without a subnet: one that exists keeps its own; new ones get distinct free ones, planned now and created as planned', () => {
    const r = check(`kind: network
name: old
---
kind: network
name: a
---
kind: network
name: b
mode: isolated
`, context({ networks: [{ ...existing, ipv4: { ...existing.ipv4!, subnet: '10.77.0.0/24' } }] }));
    expect(r.text).toBe('');
    const subnets = Object.fromEntries(r.desired.filter((d) => d.kind === 'network').map((d) => [d.name, [d.request.subnet, d.valid.ipv4?.subnet]]));
    expect(subnets).toEqual({ old: ['10.77.0.0/24', '10.77.0.0/24'], a: ['10.77.1.0/24', '10.77.1.0/24'], b: ['10.77.2.0/24', '10.77.2.0/24'] });
  });

  it('points at the line and column of a missing field, a wrong type, an unknown field and an unknown kind', () => {
    const r = check(`kind: instance
name: web
kernel: /boot/k
cpus: two
colour: blue
---
kind: volume
name: data
---
kind: lxc
name: c1
---
kind: image
name: debian-12
`);
    expect(r.desired).toEqual([]);
    expect(r.text.split('\n').filter((l) => !l.startsWith('  hint'))).toEqual([
      'stack.yaml:4:7: instance web: cpus: must be an integer, not string "two"',
      'stack.yaml:5:1: instance web: unknown field "colour"',
      'stack.yaml:7:1: volume data: missing field "size"',
      'stack.yaml:10:7: unknown kind "lxc"',
      'stack.yaml:14:7: image debian-12: give url (to pull it) or file (to import it), one of the two',
    ]);
    expect(r.text).toContain('hint: use one of image, network, pool, volume, instance, template');
  });

  it('refuses overlapping subnets (with the host and within the file), duplicates and dangling references', () => {
    const r = check(`kind: network
name: a
subnet: 10.9.0.0/25
---
kind: network
name: b
subnet: 10.20.0.0/24
---
kind: network
name: c
subnet: 10.20.0.128/25
---
kind: network
name: b
subnet: 10.30.0.0/24
---
kind: instance
name: web
image: nope
nics: [{network: user}, {network: ghost}, {network: old, ip: 10.9.0.1}, {network: b, ip: 10.21.0.5}]
volumes: [missing]
`);
    const lines = r.text.split('\n').filter((l) => !l.startsWith('  hint'));
    expect(lines).toEqual([
      'stack.yaml:3:9: network a: subnet: 10.9.0.0/25 overlaps network old (10.9.0.0/24)',
      'stack.yaml:11:9: network c: subnet: 10.20.0.128/25 overlaps network b (10.20.0.0/24)',
      'stack.yaml:14:7: network b is defined twice (first at stack.yaml:6:7)',
      'stack.yaml:19:8: instance web: image: there is no image nope',
      'stack.yaml:20:35: instance web: there is no network ghost',
      'stack.yaml:20:62: instance web: ip: 10.9.0.1 is not a guest address of network old (10.9.0.0/24, gateway 10.9.0.1)',
      'stack.yaml:20:90: instance web: ip: 10.21.0.5 is not a guest address of network b (10.20.0.0/24, gateway 10.20.0.1)',
      'stack.yaml:21:11: instance web: there is no volume missing',
    ]);
  });

  it('refuses an object another stack owns, and memory beyond the host', () => {
    const r = check('kind: instance\nname: web\nkernel: /boot/k\nmemory: 64G\n', context({ owners: new Map([['instance/web', { stack: 'other', created: true }]]) }));
    expect(r.text).toMatch(/^stack.yaml:2:7: instance web belongs to stack other/m);
    expect(r.text).toMatch(/^stack.yaml:4:9: instance web: memory: 64G is out of range/m);
  });

  it('images are pulled or imported, templates made from an instance outside the stack; references to a stack image hold', () => {
    const ok = check(`kind: image
name: base
url: http://127.0.0.1:1/base.qcow2
sha256: ${'AB'.repeat(32)}
---
kind: image
name: local
file: /srv/disk.qcow2
---
kind: instance
name: web
image: base
---
kind: template
name: tpl
instance: golden
`);
    expect(ok.text).toBe('');
    expect(ok.desired.map((d) => `${d.kind}/${d.name}`)).toEqual(['image/base', 'image/local', 'instance/web', 'template/tpl']);
    expect(ok.desired[0]).toMatchObject({ source: { url: 'http://127.0.0.1:1/base.qcow2', sha256: 'ab'.repeat(32) }, sha256: 'ab'.repeat(32) });
    const bad = check(`kind: image
name: both
url: http://127.0.0.1:1/x.qcow2
file: /srv/disk.qcow2
---
kind: image
name: rel
file: disk.qcow2
---
kind: template
name: tpl
instance: web
---
kind: template
name: tpl2
instance: ghost
---
kind: instance
name: web
kernel: /boot/k
`);
    expect(bad.desired.map((d) => `${d.kind}/${d.name}`)).toEqual(['instance/web']);
    expect(bad.text.split('\n').filter((l) => !l.startsWith('  hint'))).toEqual([
      'stack.yaml:2:7: image both: give url (to pull it) or file (to import it), one of the two',
      'stack.yaml:8:7: image rel: file: "disk.qcow2" is not an absolute path',
      'stack.yaml:12:11: template tpl: instance web is in this stack, but making a template consumes its instance',
      'stack.yaml:16:11: template tpl2: there is no instance ghost to make it from',
    ]);
  });
});
