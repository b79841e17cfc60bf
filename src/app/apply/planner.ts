/**
 * The planner: desired state and current state in, the changes out, field by field with the class of each (live,
 * next boot, replace) and the steps that make them. Pure: no host, no database. Fields left out of a file take
 * the defaults `create` would use, and values are compared normalized, so a default never shows as a change.
 */
import type { ChangeClass, FieldChangeView, PlannedObjectView } from '../../api/stack.ts';
import type { PortForwardSpec, Tuning } from '../../instances/model.ts';
import type { ResourceChange } from '../../instances/resources.ts';
import { formatSize } from '../../lib/units.ts';
import type { CurrentInstance, CurrentState, Desired, DesiredImage, DesiredInstance, DesiredNetwork, DesiredPool, DesiredTemplate, DesiredVolume, Owner } from './model.ts';
import { ownerKey } from './model.ts';

export type Step =
  | { op: 'image.create'; desired: DesiredImage }
  | { op: 'image.delete'; name: string }
  | { op: 'template.create'; desired: DesiredTemplate }
  | { op: 'template.delete'; name: string }
  | { op: 'network.create'; desired: DesiredNetwork }
  | { op: 'network.delete'; name: string }
  | { op: 'pool.create'; desired: DesiredPool }
  | { op: 'pool.delete'; name: string }
  | { op: 'volume.create'; desired: DesiredVolume }
  | { op: 'volume.resize'; name: string; size: string; allowShrink: boolean }
  | { op: 'volume.delete'; name: string }
  | { op: 'instance.create'; desired: DesiredInstance }
  | { op: 'instance.resources'; name: string; change: ResourceChange }
  | { op: 'nic.attach'; name: string; network: string; ip?: string }
  | { op: 'nic.detach'; name: string; mac: string }
  | { op: 'disk.attach'; name: string; volume: string }
  | { op: 'disk.detach'; name: string; volume: string }
  | { op: 'port.add'; name: string; ports: string; address: string }
  | { op: 'port.remove'; name: string; port: string }
  | { op: 'instance.start'; name: string }
  | { op: 'instance.resume'; name: string }
  | { op: 'instance.stop'; name: string }
  | { op: 'instance.delete'; name: string }
  | { op: 'own'; kind: string; name: string; created: boolean; userDataSha256?: string }
  | { op: 'disown'; kind: string; name: string };

export interface PlannedObject extends PlannedObjectView {
  steps: Step[];
}

export interface PlanOptions {
  stack: string;
  allowReplace?: boolean;
  prune?: boolean;
  reprovision?: boolean;
}

const KIND_ORDER = ['image', 'network', 'pool', 'volume', 'instance', 'template'] as const;

export function plan(desired: readonly Desired[], current: CurrentState, options: PlanOptions): PlannedObject[] {
  const out: PlannedObject[] = [];
  for (const kind of KIND_ORDER) {
    for (const d of desired.filter((x) => x.kind === kind)) {
      const owner = current.owners.get(ownerKey(d.kind, d.name));
      const planned =
        d.kind === 'image'
          ? planImage(d, current)
          : d.kind === 'template'
            ? planTemplate(d, current)
            : d.kind === 'network'
              ? planNetwork(d, current, options)
              : d.kind === 'pool'
                ? planPool(d, current)
                : d.kind === 'volume'
                  ? planVolume(d, current)
                  : planInstance(d, current, owner, options);
      if (planned.action === 'create') planned.steps.push(own(d, options, true));
      else if (owner === undefined) {
        planned.changes.push({ field: 'owner', to: options.stack, class: 'none', note: 'adopted: it existed before, the stack manages it from now on (never pruned)' });
        planned.steps.push(own(d, options, false));
        if (planned.action === 'none') planned.action = 'update';
      }
      if (planned.action === 'replace' && options.allowReplace !== true) {
        planned.blocked = `replacing ${d.kind} ${d.name} deletes it and makes it again: run with --allow-replace`;
      }
      out.push(planned);
    }
  }
  // What the stack made and the files no longer hold: deleted with --prune (instances first, networks last).
  const wanted = new Set(desired.map((d) => ownerKey(d.kind, d.name)));
  for (const kind of [...KIND_ORDER].reverse()) {
    for (const [key, owner] of current.owners) {
      const [k, name] = key.split('/') as [string, string];
      if (k !== kind || owner.stack !== options.stack || wanted.has(key)) continue;
      const exists = {
        image: () => current.images.has(name),
        template: () => current.templates.has(name),
        network: () => current.networks.has(name),
        pool: () => current.pools.has(name),
        volume: () => current.volumes.has(name),
        instance: () => current.instances.has(name),
      }[kind]();
      if (options.prune !== true || !owner.created) {
        const note = owner.created ? 'not in the stack files any more: --prune deletes it' : 'not in the stack files any more; it was adopted, so --prune leaves it';
        out.push({ kind, name, action: 'none', changes: [{ field: '', class: 'none', note }], steps: [] });
        continue;
      }
      const steps: Step[] = exists ? [{ op: `${kind}.delete` as 'network.delete', name }] : [];
      steps.push({ op: 'disown', kind, name });
      out.push({ kind, name, action: 'delete', changes: [{ field: kind, from: name, class: 'delete', ...(exists ? {} : { note: 'already gone: forgotten' }) }], steps });
    }
  }
  return out;
}

function own(d: Desired, options: PlanOptions, created: boolean): Step {
  return { op: 'own', kind: d.kind, name: d.name, created, ...(d.kind === 'instance' && d.userDataSha256 !== undefined ? { userDataSha256: d.userDataSha256 } : {}) };
}

const change = (field: string, from: unknown, to: unknown, cls: ChangeClass, note?: string): FieldChangeView => ({
  field,
  ...(from === undefined ? {} : { from: String(from) }),
  ...(to === undefined ? {} : { to: String(to) }),
  class: cls,
  ...(note === undefined ? {} : { note }),
});

function created(kind: string, name: string, steps: Step[], fields: Array<[string, unknown]>): PlannedObject {
  return { kind, name, action: 'create', changes: fields.filter(([, v]) => v !== undefined).map(([f, v]) => change(f, undefined, v, 'create')), steps };
}

/** An image is made once (pulled or imported); another digest under its name is a replace. */
function planImage(d: DesiredImage, current: CurrentState): PlannedObject {
  const cur = current.images.get(d.name);
  const from = 'url' in d.source ? d.source.url : d.source.file;
  if (cur === undefined) return created('image', d.name, [{ op: 'image.create', desired: d }], [['url' in d.source ? 'url' : 'file', from], ['sha256', d.sha256]]);
  if (d.sha256 === undefined || d.sha256 === cur.sha256) return { kind: 'image', name: d.name, action: 'none', changes: [], steps: [] };
  return {
    kind: 'image',
    name: d.name,
    action: 'replace',
    changes: [change('sha256', cur.sha256, d.sha256, 'replace', 'the image is removed (refused while instances use it) and fetched again')],
    steps: [{ op: 'image.delete', name: d.name }, { op: 'image.create', desired: d }],
  };
}

/** A template is made once from its instance (which it consumes): afterwards there is nothing to compare. */
function planTemplate(d: DesiredTemplate, current: CurrentState): PlannedObject {
  if (current.templates.has(d.name)) return { kind: 'template', name: d.name, action: 'none', changes: [], steps: [] };
  return created('template', d.name, [{ op: 'template.create', desired: d }], [['instance', d.instance]]);
}

function planNetwork(d: DesiredNetwork, current: CurrentState, _options: PlanOptions): PlannedObject {
  const v = d.valid;
  const cur = current.networks.get(d.name);
  const range = (x: { dhcpStart: string; dhcpEnd: string } | undefined) => (x === undefined ? undefined : `${x.dhcpStart}-${x.dhcpEnd}`);
  if (cur === undefined) {
    return created('network', d.name, [{ op: 'network.create', desired: d }], [['mode', v.mode], ['subnet', v.ipv4?.subnet], ['dhcpRange', range(v.ipv4)], ['domain', v.domain], ['bridge', v.bridge]]);
  }
  const changes: FieldChangeView[] = [];
  const cmp = (field: string, from: unknown, to: unknown) => {
    if (from !== to) changes.push(change(field, from, to, 'replace', 'a network is made again with its new settings (its instances\' NICs must be detached first)'));
  };
  cmp('mode', cur.mode, v.mode);
  cmp('subnet', cur.ipv4?.subnet, v.ipv4?.subnet);
  cmp('dhcpRange', range(cur.ipv4), range(v.ipv4));
  cmp('domain', cur.domain, v.domain);
  if (v.mode === 'bridge') cmp('bridge', cur.bridge, v.bridge);
  if (changes.length === 0) return { kind: 'network', name: d.name, action: 'none', changes, steps: [] };
  return { kind: 'network', name: d.name, action: 'replace', changes, steps: [{ op: 'network.delete', name: d.name }, { op: 'network.create', desired: d }] };
}

function planPool(d: DesiredPool, current: CurrentState): PlannedObject {
  const cur = current.pools.get(d.name);
  if (cur === undefined) return created('pool', d.name, [{ op: 'pool.create', desired: d }], [['path', d.path]]);
  if (cur.path === d.path) return { kind: 'pool', name: d.name, action: 'none', changes: [], steps: [] };
  return { kind: 'pool', name: d.name, action: 'replace', changes: [change('path', cur.path, d.path, 'replace')], steps: [{ op: 'pool.delete', name: d.name }, { op: 'pool.create', desired: d }] };
}

function planVolume(d: DesiredVolume, current: CurrentState): PlannedObject {
  const cur = current.volumes.get(d.name);
  if (cur === undefined) return created('volume', d.name, [{ op: 'volume.create', desired: d }], [['size', formatSize(d.sizeBytes)], ['format', d.format], ['pool', d.pool]]);
  const changes: FieldChangeView[] = [];
  const steps: Step[] = [];
  let replace = false;
  for (const [field, from, to] of [['format', cur.format, d.format], ['pool', cur.pool, d.pool]] as const) {
    if (from !== to) {
      changes.push(change(field, from, to, 'replace', 'the volume is made again, empty'));
      replace = true;
    }
  }
  if (replace) {
    return { kind: 'volume', name: d.name, action: 'replace', changes, steps: [{ op: 'volume.delete', name: d.name }, { op: 'volume.create', desired: d }] };
  }
  if (cur.virtualSize !== undefined && cur.virtualSize !== d.sizeBytes) {
    const grow = d.sizeBytes > cur.virtualSize;
    const cls: ChangeClass = grow ? (cur.attachedTo === undefined ? 'next-boot' : 'live') : 'replace';
    const note = grow ? (cur.attachedTo === undefined ? 'the file grows now' : `block_resize in ${cur.attachedTo}`) : 'shrinking loses the data past the new end';
    changes.push(change('size', formatSize(cur.virtualSize), formatSize(d.sizeBytes), cls, note));
    steps.push({ op: 'volume.resize', name: d.name, size: d.size, allowShrink: !grow });
    return { kind: 'volume', name: d.name, action: grow ? 'update' : 'replace', changes, steps };
  }
  return { kind: 'volume', name: d.name, action: 'none', changes, steps };
}

const portText = (p: PortForwardSpec) => `${p.hostPort}:${p.guestPort}/${p.protocol}`;
const portKey = (p: PortForwardSpec) => `${p.hostAddress}:${portText(p)}`;

function planInstance(d: DesiredInstance, current: CurrentState, owner: Owner | undefined, options: PlanOptions): PlannedObject {
  const cur = current.instances.get(d.name);
  if (cur === undefined) return createInstance(d);
  const changes: FieldChangeView[] = [];
  const replaceBecause: string[] = [];
  const running = cur.state === 'running' || cur.state === 'paused';
  const liveNow = running && d.state === 'running';
  const when: ChangeClass = liveNow ? 'live' : 'next-boot';
  const pre: Step[] = [];
  const steps: Step[] = [];

  if (d.state === 'stopped' && running) {
    changes.push(change('state', cur.state, 'stopped', 'live', 'graceful shutdown (ACPI)'));
    pre.push({ op: 'instance.stop', name: d.name });
  }

  // Identity of the boot: what it boots cannot change in place.
  if ((d.image ?? '') !== (cur.image ?? '')) {
    changes.push(change('image', cur.image ?? '(kernel boot)', d.image ?? '(kernel boot)', 'replace'));
    replaceBecause.push('image');
  }
  const resources: ResourceChange = {};
  if (cur.cpus !== d.cpus) {
    changes.push(change('cpus', cur.cpus, d.cpus, 'next-boot', running ? 'vCPUs change at the next boot' : undefined));
    resources.cpus = d.cpus;
  }
  if (cur.memoryMiB !== d.memoryMiB) {
    const boot = cur.bootMemoryMiB ?? cur.memoryMiB;
    const live = running && d.memoryMiB <= boot;
    const note = live ? 'balloon now; the new size from the next boot too' : running ? `more than the ${boot} MiB it booted with: from the next boot` : undefined;
    changes.push(change('memory', `${cur.memoryMiB}M`, `${d.memoryMiB}M`, live ? 'live' : 'next-boot', note));
    resources.memoryMiB = d.memoryMiB;
  }
  if (cur.accel !== d.accel) {
    changes.push(change('accel', cur.accel, d.accel, 'next-boot'));
    resources.accel = d.accel;
  }
  // Tuning is how QEMU is started: every knob takes effect at the next boot.
  const knobs = new Set([...Object.keys(cur.tuning ?? {}), ...Object.keys(d.tuning ?? {})] as Array<keyof Tuning>);
  let tuningChanged = false;
  for (const knob of [...knobs].sort()) {
    const show = (t: Tuning | undefined) => (t?.[knob] === undefined ? undefined : Array.isArray(t[knob]) ? (t[knob] as number[]).join(',') : String(t[knob]));
    if (show(cur.tuning) !== show(d.tuning)) {
      changes.push(change(`tuning.${knob}`, show(cur.tuning), show(d.tuning), 'next-boot', running ? 'QEMU is started with it at the next boot' : undefined));
      tuningChanged = true;
    }
  }
  if (tuningChanged) resources.tuning = d.tuning ?? null;
  if (d.image === undefined && cur.image === undefined) {
    const b = (x: typeof d.boot) => (x === undefined ? undefined : JSON.stringify([x.kernel, x.initrd ?? '', x.cmdline ?? '']));
    if (b(cur.boot) !== b(d.boot)) {
      for (const f of ['kernel', 'initrd', 'cmdline'] as const) {
        if (cur.boot?.[f] !== d.boot?.[f]) changes.push(change(f, cur.boot?.[f], d.boot?.[f], 'next-boot'));
      }
      resources.boot = d.boot ?? null;
    }
  }
  if (Object.keys(resources).length > 0) steps.push({ op: 'instance.resources', name: d.name, change: resources });

  // NICs by position: the ones kept keep their MACs; a different network at a position is a new NIC (new MAC).
  const nics = [...cur.nics].sort((a, b) => a.index - b.index);
  const count = Math.max(nics.length, d.nics.length);
  const detach: Step[] = [];
  const attach: Step[] = [];
  for (let i = 0; i < count; i++) {
    const have = nics[i];
    const want = d.nics[i];
    const same = have !== undefined && want !== undefined && have.network === want.network && (want.ip === undefined || (have.staticAddress === true && have.address === want.ip));
    if (same) continue;
    const userHotplug = liveNow && (want?.network === 'user' || have?.network === 'user');
    if (userHotplug) replaceBecause.push(`nics[${i}]`);
    const cls: ChangeClass = userHotplug ? 'replace' : when;
    const show = (n: { network: string; ip?: string; address?: string } | undefined) => (n === undefined ? undefined : `${n.network}${n.ip !== undefined ? ` ${n.ip}` : ''}`);
    const note = userHotplug ? 'a user-mode NIC cannot be hot-plugged' : liveNow ? (want === undefined ? 'hot-unplug' : 'hot-plug (a new MAC)') : undefined;
    changes.push(change(`nics[${i}]`, show(have), show(want), cls, note));
    if (have !== undefined) detach.unshift({ op: 'nic.detach', name: d.name, mac: have.mac });
    if (want !== undefined) attach.push({ op: 'nic.attach', name: d.name, network: want.network, ...(want.ip === undefined ? {} : { ip: want.ip }) });
  }
  steps.push(...detach, ...attach);

  for (const v of cur.volumes.filter((x) => !d.volumes.includes(x))) {
    changes.push(change('volumes', v, undefined, when, liveNow ? 'hot-unplug' : undefined));
    steps.push({ op: 'disk.detach', name: d.name, volume: v });
  }
  for (const v of d.volumes.filter((x) => !cur.volumes.includes(x))) {
    changes.push(change('volumes', undefined, v, when, liveNow ? 'hot-plug' : undefined));
    steps.push({ op: 'disk.attach', name: d.name, volume: v });
  }

  const have = new Map(cur.ports.map((p) => [portKey(p), p]));
  const want = new Map(d.ports.map((p) => [portKey(p), p]));
  for (const [k, p] of have) {
    if (want.has(k)) continue;
    changes.push(change('ports', portText(p), undefined, when));
    steps.push({ op: 'port.remove', name: d.name, port: `${p.hostPort}/${p.protocol}` });
  }
  for (const [k, p] of want) {
    if (have.has(k)) continue;
    changes.push(change('ports', undefined, portText(p), when));
    steps.push({ op: 'port.add', name: d.name, ports: portText(p), address: p.hostAddress });
  }

  if (owner !== undefined && owner.userDataSha256 !== d.userDataSha256 && d.image !== undefined) {
    if (options.reprovision === true) {
      changes.push(change('userData', 'sha256:' + (owner.userDataSha256 ?? 'none').slice(0, 12), 'sha256:' + (d.userDataSha256 ?? 'none').slice(0, 12), 'replace', 'reprovision: the instance is made again so cloud-init runs the new user-data'));
      replaceBecause.push('userData');
    } else if (cur.booted) {
      changes.push(change('userData', undefined, undefined, 'none', 'changed, but will not re-run: cloud-init ran the user-data at first boot (--reprovision makes the instance again)'));
      steps.push({ op: 'own', kind: 'instance', name: d.name, created: owner.created, ...(d.userDataSha256 === undefined ? {} : { userDataSha256: d.userDataSha256 }) });
    }
  }

  if (d.state === 'running' && !running) {
    changes.push(change('state', cur.state, 'running', 'live', 'start'));
    steps.push({ op: 'instance.start', name: d.name });
  } else if (d.state === 'running' && cur.state === 'paused') {
    changes.push(change('state', 'paused', 'running', 'live', 'resume'));
    steps.push({ op: 'instance.resume', name: d.name });
  }

  if (replaceBecause.length > 0) {
    const replaceSteps: Step[] = [{ op: 'instance.delete', name: d.name }, ...createInstance(d).steps];
    return { kind: 'instance', name: d.name, action: 'replace', changes, steps: replaceSteps };
  }
  return { kind: 'instance', name: d.name, action: changes.length === 0 ? 'none' : 'update', changes, steps: [...pre, ...steps] };
}

function createInstance(d: DesiredInstance): PlannedObject {
  const steps: Step[] = [{ op: 'instance.create', desired: d }];
  for (const v of d.volumes) steps.push({ op: 'disk.attach', name: d.name, volume: v });
  for (const p of d.ports) steps.push({ op: 'port.add', name: d.name, ports: portText(p), address: p.hostAddress });
  if (d.state === 'running') steps.push({ op: 'instance.start', name: d.name });
  return created('instance', d.name, steps, [
    [d.image === undefined ? 'kernel' : 'image', d.image ?? d.boot?.kernel],
    ['cpus', d.cpus],
    ['memory', `${d.memoryMiB}M`],
    ...Object.entries(d.tuning ?? {}).map(([k, v]): [string, unknown] => [`tuning.${k}`, Array.isArray(v) ? v.join(',') : v]),
    ...d.nics.map((n, i): [string, unknown] => [`nics[${i}]`, `${n.network}${n.ip === undefined ? '' : ` ${n.ip}`}`]),
    ...d.volumes.map((v): [string, unknown] => ['volumes', v]),
    ...d.ports.map((p): [string, unknown] => ['ports', portText(p)]),
    ['state', d.state],
  ]);
}

/** Only what a user reads: the steps stay inside. */
export function planView(objects: readonly PlannedObject[]): PlannedObjectView[] {
  return objects.map(({ steps: _steps, ...view }) => view);
}
