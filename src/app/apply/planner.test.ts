import { describe, expect, it } from 'vitest';
import type { CurrentInstance, CurrentState, DesiredInstance, DesiredNetwork, DesiredVolume } from './model.ts';
import { plan } from './planner.ts';

const net = (name: string, subnet = '10.5.0.0/24'): DesiredNetwork => ({
  kind: 'network',
  name,
  request: { name, subnet },
  valid: { name, mode: 'nat', ipv4: { subnet, gateway: '10.5.0.1', dhcpStart: '10.5.0.2', dhcpEnd: '10.5.0.254' }, domain: `${name}.internal` },
});
const vol = (name: string, sizeBytes = 1 << 30): DesiredVolume => ({ kind: 'volume', name, size: `${sizeBytes}`, sizeBytes, format: 'qcow2', pool: 'default', preallocate: false });
type Loose<T> = { [K in keyof T]?: T[K] | undefined };
/** Defaults plus `extra`; an `undefined` in it removes the field. */
const defined = <T extends object>(value: T): T => Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
const inst = (name: string, extra: Loose<DesiredInstance> = {}): DesiredInstance => defined({
  kind: 'instance',
  name,
  state: 'running',
  boot: { kernel: '/k' },
  cpus: 1,
  memoryMiB: 512,
  accel: 'auto',
  nics: [{ network: 'user' }],
  volumes: [],
  ports: [],
  ...extra,
} as DesiredInstance);
const current = (i: Loose<CurrentInstance> & { name: string }): CurrentInstance => defined({
  state: 'running',
  cpus: 1,
  memoryMiB: 512,
  accel: 'auto',
  boot: { kernel: '/k' },
  nics: [{ index: 0, mac: '52:54:00:00:00:01', network: 'user' }],
  volumes: [],
  ports: [],
  booted: true,
  ...i,
} as CurrentInstance);
function state(parts: Partial<CurrentState> = {}): CurrentState {
  return { images: new Map(), templates: new Set(), networks: new Map(), pools: new Map(), volumes: new Map(), instances: new Map(), owners: new Map(), ...parts };
}
const owned = (...keys: string[]) => new Map(keys.map((k) => [k, { stack: 's', created: true }]));

describe('plan', () => {
  it('creates what is missing, networks before volumes before instances, and records ownership', () => {
    const p = plan([inst('a', { volumes: ['d'] }), vol('d'), net('n')], state(), { stack: 's' });
    expect(p.map((o) => `${o.action} ${o.kind} ${o.name}`)).toEqual(['create network n', 'create volume d', 'create instance a']);
    expect(p[2]!.steps.map((s) => s.op)).toEqual(['instance.create', 'disk.attach', 'instance.start', 'own']);
    expect(p[2]!.steps.at(-1)).toEqual({ op: 'own', kind: 'instance', name: 'a', created: true });
  });

  it('finds nothing to do when the host matches, defaults included', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a' })]]), owners: owned('instance/a') });
    const p = plan([inst('a')], cur, { stack: 's' });
    expect(p).toEqual([{ kind: 'instance', name: 'a', action: 'none', changes: [], steps: [] }]);
  });

  it('classifies memory: live when it fits in what the guest booted with, next boot when more', () => {
    const cur = (memoryMiB: number, bootMemoryMiB: number) => state({ instances: new Map([['a', current({ name: 'a', memoryMiB, bootMemoryMiB })]]), owners: owned('instance/a') });
    const down = plan([inst('a', { memoryMiB: 256 })], cur(512, 512), { stack: 's' })[0]!;
    expect(down.changes).toEqual([expect.objectContaining({ field: 'memory', from: '512M', to: '256M', class: 'live' })]);
    expect(down.steps).toEqual([{ op: 'instance.resources', name: 'a', change: { memoryMiB: 256 } }]);
    const up = plan([inst('a', { memoryMiB: 1024 })], cur(512, 512), { stack: 's' })[0]!;
    expect(up.changes[0]!.class).toBe('next-boot');
    const back = plan([inst('a', { memoryMiB: 512 })], cur(256, 512), { stack: 's' })[0]!;
    expect(back.changes[0]!.class).toBe('live');
    const stopped = plan([inst('a', { memoryMiB: 256, state: 'stopped' })], state({ instances: new Map([['a', current({ name: 'a', state: 'stopped' })]]), owners: owned('instance/a') }), { stack: 's' })[0]!;
    expect(stopped.changes[0]!.class).toBe('next-boot');
  });

  it('cpus are next boot; a new NIC on a managed network is hot-plugged and the existing NIC keeps its MAC', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a' })]]), owners: owned('instance/a') });
    const p = plan([inst('a', { cpus: 2, nics: [{ network: 'user' }, { network: 'lab' }] })], cur, { stack: 's' })[0]!;
    expect(p.action).toBe('update');
    expect(p.changes.map((c) => [c.field, c.class])).toEqual([
      ['cpus', 'next-boot'],
      ['nics[1]', 'live'],
    ]);
    expect(p.steps).toEqual([
      { op: 'instance.resources', name: 'a', change: { cpus: 2 } },
      { op: 'nic.attach', name: 'a', network: 'lab' },
    ]);
  });

  it('tuning knobs are next boot, shown one by one; the same tuning is no change', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a', tuning: { diskCache: 'none', discard: true } })]]), owners: owned('instance/a') });
    const same = plan([inst('a', { tuning: { discard: true, diskCache: 'none' } })], cur, { stack: 's' })[0]!;
    expect(same.action).toBe('none');
    const p = plan([inst('a', { tuning: { diskCache: 'writeback', vcpuPins: [1] } })], cur, { stack: 's' })[0]!;
    expect(p.changes.map((c) => [c.field, c.from, c.to, c.class])).toEqual([
      ['tuning.diskCache', 'none', 'writeback', 'next-boot'],
      ['tuning.discard', 'true', undefined, 'next-boot'],
      ['tuning.vcpuPins', undefined, '1', 'next-boot'],
    ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))));
    expect(p.steps).toEqual([{ op: 'instance.resources', name: 'a', change: { tuning: { diskCache: 'writeback', vcpuPins: [1] } } }]);
    const cleared = plan([inst('a', {})], cur, { stack: 's' })[0]!;
    expect(cleared.steps).toEqual([{ op: 'instance.resources', name: 'a', change: { tuning: null } }]);
  });

  it('volumes and ports are attached and detached live on a running instance', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a', volumes: ['old'], ports: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 }] })]]), owners: owned('instance/a') });
    const p = plan([inst('a', { volumes: ['new'], ports: [{ protocol: 'udp', hostAddress: '127.0.0.1', hostPort: 5353, guestPort: 53 }] })], cur, { stack: 's' })[0]!;
    expect(p.changes.every((c) => c.class === 'live')).toBe(true);
    expect(p.steps.map((s) => s.op)).toEqual(['disk.detach', 'disk.attach', 'port.remove', 'port.add']);
  });

  it('a changed image is a replace, blocked without allowReplace, and a replacement deletes (gracefully) before it creates', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a', image: 'deb', boot: undefined })]]), owners: owned('instance/a') });
    const blocked = plan([inst('a', { image: 'alpine', boot: undefined })], cur, { stack: 's' })[0]!;
    expect(blocked.action).toBe('replace');
    expect(blocked.blocked).toMatch(/--allow-replace/);
    const allowed = plan([inst('a', { image: 'alpine', boot: undefined })], cur, { stack: 's', allowReplace: true })[0]!;
    expect(allowed.blocked).toBeUndefined();
    expect(allowed.steps.map((s) => s.op)).toEqual(['instance.delete', 'instance.create', 'instance.start']);
  });

  it('a changed user-data of a booted instance will not re-run unless reprovisioned', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a', image: 'deb', boot: undefined })]]), owners: new Map([['instance/a', { stack: 's', created: true, userDataSha256: 'aaa' }]]) });
    const d = inst('a', { image: 'deb', boot: undefined, userData: '#cloud-config\n', userDataSha256: 'bbb' });
    const kept = plan([d], cur, { stack: 's' })[0]!;
    expect(kept.changes).toEqual([expect.objectContaining({ field: 'userData', class: 'none', note: expect.stringMatching(/will not re-run/) })]);
    expect(kept.steps).toEqual([{ op: 'own', kind: 'instance', name: 'a', created: true, userDataSha256: 'bbb' }]);
    const again = plan([d], state({ ...cur, owners: new Map([['instance/a', { stack: 's', created: true, userDataSha256: 'bbb' }]]) }), { stack: 's' })[0]!;
    expect(again.action).toBe('none');
    const re = plan([d], cur, { stack: 's', reprovision: true, allowReplace: true })[0]!;
    expect(re.action).toBe('replace');
  });

  it('state: a stopped instance is started, a running one stopped gracefully first when the file says stopped', () => {
    const stopped = state({ instances: new Map([['a', current({ name: 'a', state: 'stopped' })]]), owners: owned('instance/a') });
    expect(plan([inst('a')], stopped, { stack: 's' })[0]!.steps).toEqual([{ op: 'instance.start', name: 'a' }]);
    const running = state({ instances: new Map([['a', current({ name: 'a' })]]), owners: owned('instance/a') });
    const p = plan([inst('a', { state: 'stopped', cpus: 2 })], running, { stack: 's' })[0]!;
    expect(p.steps.map((s) => s.op)).toEqual(['instance.stop', 'instance.resources']);
  });

  it('prunes only what this stack created, instances before volumes before networks, and only with prune', () => {
    const cur = state({
      networks: new Map([['n', { name: 'n', id: 'x', mode: 'nat', bridge: 'b', createdAt: '' }]]),
      volumes: new Map([['d', { name: 'd', pool: 'default', format: 'qcow2' }]]),
      instances: new Map([['a', current({ name: 'a' })], ['b', current({ name: 'b' })], ['c', current({ name: 'c' })]]),
      owners: new Map([
        ['network/n', { stack: 's', created: true }],
        ['volume/d', { stack: 's', created: true }],
        ['instance/a', { stack: 's', created: true }],
        ['instance/b', { stack: 'other', created: true }],
        ['instance/c', { stack: 's', created: false }],
      ]),
    });
    const without = plan([], cur, { stack: 's' });
    expect(without.every((o) => o.action === 'none' && o.steps.length === 0)).toBe(true);
    const p = plan([], cur, { stack: 's', prune: true });
    expect(p.filter((o) => o.action === 'delete').map((o) => `${o.kind} ${o.name}`)).toEqual(['instance a', 'volume d', 'network n']);
    expect(p.find((o) => o.name === 'a')!.steps).toEqual([{ op: 'instance.delete', name: 'a' }, { op: 'disown', kind: 'instance', name: 'a' }]);
    expect(p.some((o) => o.name === 'b')).toBe(false);
    expect(p.find((o) => o.name === 'c')!.action).toBe('none');
  });

  it('adopts an object that exists without an owner instead of replacing it', () => {
    const cur = state({ instances: new Map([['a', current({ name: 'a' })]]) });
    const p = plan([inst('a')], cur, { stack: 's' })[0]!;
    expect(p.action).toBe('update');
    expect(p.changes).toEqual([expect.objectContaining({ field: 'owner', class: 'none' })]);
    expect(p.steps).toEqual([{ op: 'own', kind: 'instance', name: 'a', created: false }]);
  });

  it('networks: any change of addressing is a replace; volumes grow live when attached and shrinking is a replace', () => {
    const n = net('n');
    const cur = state({
      networks: new Map([['n', { name: 'n', id: 'x', mode: 'nat', bridge: 'b', ipv4: { subnet: '10.6.0.0/24', gateway: '10.6.0.1', dhcpStart: '10.6.0.2', dhcpEnd: '10.6.0.254' }, domain: 'n.internal', createdAt: '' }]]),
      volumes: new Map([['d', { name: 'd', pool: 'default', format: 'qcow2', virtualSize: 1 << 30, attachedTo: 'a' }]]),
      owners: owned('network/n', 'volume/d'),
    });
    const p = plan([n, vol('d', 2 * 2 ** 30)], cur, { stack: 's' });
    expect(p[0]!.action).toBe('replace');
    expect(p[0]!.changes.map((c) => c.field)).toEqual(['subnet', 'dhcpRange']);
    expect(p[1]!.changes).toEqual([expect.objectContaining({ field: 'size', from: '1 GiB', to: '2 GiB', class: 'live' })]);
    const shrink = plan([vol('d', 512 << 20)], cur, { stack: 's' })[0]!;
    expect(shrink.action).toBe('replace');
    expect(shrink.blocked).toBeDefined();
  });

  it('an image is made once and replaced only for another digest; a template is made once', () => {
    const image = { kind: 'image' as const, name: 'base', source: { url: 'http://h/base.qcow2' }, sha256: 'aa' };
    const absent = plan([image, { kind: 'template', name: 't', instance: 'src' }], state(), { stack: 's' });
    expect(absent.map((p) => [p.kind, p.action])).toEqual([['image', 'create'], ['template', 'create']]);
    expect(absent[0]!.steps[0]).toEqual({ op: 'image.create', desired: image });
    const present = state({ images: new Map([['base', { sha256: 'aa' }]]), templates: new Set(['t']), owners: owned('image/base', 'template/t') });
    expect(plan([image, { kind: 'template', name: 't', instance: 'src' }], present, { stack: 's' }).map((p) => p.action)).toEqual(['none', 'none']);
    const other = plan([{ ...image, sha256: 'bb' }], present, { stack: 's' })[0]!;
    expect(other).toMatchObject({ action: 'replace', blocked: expect.stringContaining('--allow-replace') });
    expect(other.steps.map((s) => s.op)).toEqual(['image.delete', 'image.create']);
    // Pruned in reverse order of making: the template before the image it may sit on.
    const pruned = plan([], present, { stack: 's', prune: true });
    expect(pruned.map((p) => `${p.kind}/${p.name}:${p.action}`)).toEqual(['template/t:delete', 'image/base:delete']);
  });
});
