/**
 * Checks every document of a stack against its schema and against the host before anything changes, and turns
 * them into the normalized desired state. Each problem is reported where it was written (file:line:column);
 * one bad document refuses the whole stack. Pure given its context (the host's networks, images, volumes...).
 */
import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import type { TSchema } from 'typebox';
import { NAME_PATTERN } from '../../api/schemas.ts';
import { DOCUMENT_SCHEMAS, type ImageDoc, type InstanceDoc, type TemplateDoc, type NetworkDoc, type PoolDoc, SUPPORTED_KINDS, type StackKind, UNSUPPORTED_KINDS, type VolumeDoc } from '../../api/stack.ts';
import type { HostLimits } from '../../host/limits.ts';
import { validateMemory } from '../../host/limits.ts';
import { validateAccel } from '../../instances/validate.ts';
import { validateTuning } from '../../instances/tuning.ts';
import { parsePortForward } from '../../instances/port-forward.ts';
import { USER_NETWORK } from '../../instances/model.ts';
import { invalid, isVirtnodeError } from '../../lib/errors.ts';
import { isHostAddress, parseCidr, parseIpv4 } from '../../network/ipv4.ts';
import type { Network } from '../../network/model.ts';
import type { HostRoute } from '../../network/routes.ts';
import { validateNetworkCreate } from '../../network/validate.ts';
import { parseDiskSize, parseFormat } from '../../storage/volumes.ts';
import type { LocatedDoc, Path, StackIssue } from './locate.ts';
import { checkSchema, type SchemaNode } from './schema-check.ts';
import { type Desired, type DesiredInstance, type DesiredNetwork, type Located, type Owner, ownerKey } from './model.ts';

/** What the validator needs to know of the host. */
export interface StackContext {
  stack: string;
  limits: HostLimits;
  networks: Network[];
  routes: HostRoute[];
  bridgeExists(name: string): boolean;
  imageExists(name: string): boolean;
  templateExists(name: string): boolean;
  instanceExists(name: string): boolean;
  fileReadable(path: string): boolean;
  pools: string[];
  volumes: string[];
  owners: Map<string, Owner>;
}

export function validateStack(docs: readonly LocatedDoc[], context: StackContext): { desired: Located[]; issues: StackIssue[] } {
  const issues: StackIssue[] = [];
  const issue = (doc: LocatedDoc, path: Path, message: string, hint?: string, key = false) =>
    issues.push({ file: doc.file, ...doc.at(path, { key }), message, ...(hint === undefined ? {} : { hint }) });

  // 1. shape: each document an object of a known kind, matching that kind's schema
  const typed: Array<{ doc: LocatedDoc; kind: StackKind; value: Record<string, unknown> }> = [];
  for (const doc of docs) {
    const value = doc.value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      issue(doc, [], `document ${doc.index + 1} is not a mapping`, `each document is one object with kind and name, e.g. kind: instance`);
      continue;
    }
    const kind = (value as Record<string, unknown>)['kind'];
    if (kind === undefined) {
      issue(doc, [], 'missing field "kind"', `one of ${SUPPORTED_KINDS.join(', ')}`);
      continue;
    }
    if ((UNSUPPORTED_KINDS as readonly unknown[]).includes(kind)) {
      issue(doc, ['kind'], `kind "${String(kind)}" is not managed by apply yet`, `apply manages ${SUPPORTED_KINDS.join(', ')}; use virtnode ${String(kind)} commands for it`);
      continue;
    }
    if (!(SUPPORTED_KINDS as readonly unknown[]).includes(kind)) {
      issue(doc, ['kind'], `unknown kind ${JSON.stringify(kind)}`, `use one of ${SUPPORTED_KINDS.join(', ')}`);
      continue;
    }
    const schemaIssues = schemaErrors(DOCUMENT_SCHEMAS[kind as StackKind], value);
    for (const e of schemaIssues) issue(doc, e.path, e.message, e.hint, e.key);
    if (schemaIssues.length === 0) typed.push({ doc, kind: kind as StackKind, value: value as Record<string, unknown> });
  }

  // 2. one object per kind and name
  const seen = new Map<string, LocatedDoc>();
  for (const t of [...typed]) {
    const key = ownerKey(t.kind, String(t.value['name']));
    const first = seen.get(key);
    if (first !== undefined) {
      const at = first.at(['name']);
      issue(t.doc, ['name'], `${t.kind} ${String(t.value['name'])} is defined twice (first at ${first.file}:${at.line}:${at.column})`, 'each object once per stack');
      typed.splice(typed.indexOf(t), 1);
    } else {
      seen.set(key, t.doc);
    }
    const owner = context.owners.get(key);
    if (owner !== undefined && owner.stack !== context.stack) {
      issue(t.doc, ['name'], `${t.kind} ${String(t.value['name'])} belongs to stack ${owner.stack}`, `apply that stack, or choose another name`);
    }
  }

  // 3. values, and references between objects (of this stack or of the host)
  const desired: Located[] = [];
  const fileNetworks: Network[] = [];
  const names = (kind: StackKind) => new Set(typed.filter((t) => t.kind === kind).map((t) => String(t.value['name'])));
  const networks = new Set([...context.networks.map((n) => n.name), ...names('network')]);
  const pools = new Set([...context.pools, ...names('pool')]);
  const volumes = new Set([...context.volumes, ...names('volume')]);
  const volumeUsers = new Map<string, string>();
  const order: StackKind[] = [...SUPPORTED_KINDS];
  const fileImages = names('image');
  const fileInstances = names('instance');
  for (const kind of order) {
    for (const t of typed.filter((x) => x.kind === kind)) {
      const field = (path: Path, fn: () => void) => {
        try {
          fn();
        } catch (e) {
          if (!isVirtnodeError(e)) throw e;
          issue(t.doc, path, `${kind} ${String(t.value['name'])}: ${path.join('.')}: ${e.message.replace(/^--?[a-z-]+: /, '')}`, e.hint);
        }
      };
      if (kind === 'image') {
        const v = t.value as ImageDoc;
        if ((v.url === undefined) === (v.file === undefined)) {
          issue(t.doc, ['name'], `image ${v.name}: give url (to pull it) or file (to import it), one of the two`);
        } else if (v.file !== undefined) {
          if (!isAbsolute(v.file)) issue(t.doc, ['file'], `image ${v.name}: file: "${v.file}" is not an absolute path`);
          else if (!context.fileReadable(v.file)) issue(t.doc, ['file'], `image ${v.name}: file: ${v.file} does not exist or is not a readable file`);
          else desired.push({ kind: 'image', name: v.name, source: { file: v.file }, ...(v.sha256 === undefined ? {} : { sha256: v.sha256.toLowerCase() }), doc: t.doc });
        } else {
          const source = { url: v.url!, ...(v.sha256 === undefined ? {} : { sha256: v.sha256.toLowerCase() }), ...(v.checksumsUrl === undefined ? {} : { checksumsUrl: v.checksumsUrl }) };
          desired.push({ kind: 'image', name: v.name, source, ...(v.sha256 === undefined ? {} : { sha256: v.sha256.toLowerCase() }), doc: t.doc });
        }
      } else if (kind === 'template') {
        const v = t.value as TemplateDoc;
        if (fileInstances.has(v.instance)) {
          issue(t.doc, ['instance'], `template ${v.name}: instance ${v.instance} is in this stack, but making a template consumes its instance`, 'leave the instance out of the stack: the template is made from it once');
        } else if (!context.templateExists(v.name) && !context.instanceExists(v.instance)) {
          issue(t.doc, ['instance'], `template ${v.name}: there is no instance ${v.instance} to make it from`, 'see virtnode list');
        } else {
          desired.push({ kind: 'template', name: v.name, instance: v.instance, doc: t.doc });
        }
      } else if (kind === 'network') {
        const v = t.value as NetworkDoc;
        field(['subnet'], () => {
          const others = [...context.networks.filter((n) => n.name !== v.name), ...fileNetworks];
          const current = context.networks.find((n) => n.name === v.name);
          const request: DesiredNetwork['request'] = { name: v.name, ...pick(v, ['mode', 'subnet', 'dhcpRange', 'domain', 'bridge']) };
          // No subnet in the file means any: a network that exists keeps its own, a new one is made on the free one planned here.
          if (request.subnet === undefined && request.mode !== 'bridge' && current?.ipv4 !== undefined) request.subnet = current.ipv4.subnet;
          const valid = validateNetworkCreate(request, { existing: others, routes: current === undefined ? context.routes : [], bridgeExists: context.bridgeExists });
          if (request.subnet === undefined && valid.ipv4 !== undefined) request.subnet = valid.ipv4.subnet;
          fileNetworks.push({ ...valid, id: '', bridge: valid.bridge ?? '', createdAt: '' });
          desired.push({ kind: 'network', name: v.name, request, valid, doc: t.doc } satisfies Located<DesiredNetwork>);
        });
      } else if (kind === 'pool') {
        const v = t.value as PoolDoc;
        if (!isAbsolute(v.path)) issue(t.doc, ['path'], `pool ${v.name}: path: "${v.path}" is not an absolute path`);
        else desired.push({ kind: 'pool', name: v.name, path: v.path, doc: t.doc });
      } else if (kind === 'volume') {
        const v = t.value as VolumeDoc;
        field(['size'], () => {
          const sizeBytes = parseDiskSize('size', v.size);
          const format = parseFormat('format', v.format, 'qcow2');
          const pool = v.pool ?? 'default';
          if (v.pool !== undefined && !pools.has(pool)) issue(t.doc, ['pool'], `volume ${v.name}: pool: there is no pool ${pool}`, 'define it in the stack (kind: pool) or create it first');
          desired.push({ kind: 'volume', name: v.name, size: v.size, sizeBytes, format, pool, preallocate: v.preallocate === true, doc: t.doc });
        });
      } else {
        const v = t.value as InstanceDoc;
        const before = issues.length;
        const out: Partial<DesiredInstance> = { kind: 'instance', name: v.name, state: v.state ?? 'running' };
        field(['cpus'], () => {
          const cpus = v.cpus ?? 1;
          if (cpus > context.limits.cpus) throw invalid('cpus', `${cpus} is more than this host's ${context.limits.cpus} logical CPUs`);
          out.cpus = cpus;
        });
        field(['memory'], () => (out.memoryMiB = validateMemory(v.memory ?? '512M', context.limits)));
        field(['accel'], () => (out.accel = validateAccel(v.accel)));
        if (v.tuning !== undefined && Object.keys(v.tuning).length > 0) {
          field(['tuning'], () => (out.tuning = validateTuning(v.tuning as Record<string, unknown>, { cpus: out.cpus ?? 1, memoryMiB: out.memoryMiB ?? 512 })));
        }
        if (v.image !== undefined && v.kernel !== undefined) issue(t.doc, ['kernel'], `instance ${v.name}: give image or kernel, not both`);
        else if (v.image === undefined && v.kernel === undefined) issue(t.doc, ['name'], `instance ${v.name}: missing field "image" or "kernel"`, 'an instance boots an image (image: debian-12) or a kernel (kernel: /boot/vmlinuz)');
        if (v.image !== undefined) {
          if (!context.imageExists(v.image) && !fileImages.has(v.image)) issue(t.doc, ['image'], `instance ${v.name}: image: there is no image ${v.image}`, 'see virtnode image ls; pull or build it first');
          out.image = v.image;
        }
        if (v.kernel === undefined && (v.initrd !== undefined || v.cmdline !== undefined)) issue(t.doc, [v.initrd !== undefined ? 'initrd' : 'cmdline'], `instance ${v.name}: initrd and cmdline need kernel`);
        if (v.kernel !== undefined) {
          for (const f of ['kernel', 'initrd'] as const) {
            const path = v[f];
            if (path === undefined) continue;
            if (!isAbsolute(path)) issue(t.doc, [f], `instance ${v.name}: ${f}: "${path}" is not an absolute path`);
            else if (!context.fileReadable(path)) issue(t.doc, [f], `instance ${v.name}: ${f}: ${path} does not exist or is not a readable file`);
          }
          out.boot = { kernel: v.kernel, ...(v.initrd === undefined ? {} : { initrd: v.initrd }), ...(v.cmdline === undefined ? {} : { cmdline: v.cmdline }) };
        }
        if (v.diskSize !== undefined) field(['diskSize'], () => parseDiskSize('diskSize', v.diskSize!));
        if (v.diskSize !== undefined) out.diskSize = v.diskSize;
        const nics = v.nics ?? [{ network: USER_NETWORK }];
        nics.forEach((n, i) => {
          if (n.network === 'none') issue(t.doc, ['nics', i, 'network'], `instance ${v.name}: nics: leave nics out for the default NIC, or write nics: [] for none`);
          else if (n.network !== USER_NETWORK && !networks.has(n.network)) issue(t.doc, ['nics', i, 'network'], `instance ${v.name}: there is no network ${n.network}`, 'define it in the stack (kind: network) or create it first');
          const address = n.ip === undefined ? undefined : parseIpv4(n.ip);
          if (n.ip !== undefined && (n.network === USER_NETWORK || address === undefined)) {
            issue(t.doc, ['nics', i, 'ip'], `instance ${v.name}: ip: "${n.ip}" ${n.network === USER_NETWORK ? 'does not apply to user-mode networking' : 'is not an IPv4 address'}`);
          } else if (address !== undefined) {
            const ipv4 = [...fileNetworks, ...context.networks].find((x) => x.name === n.network)?.ipv4;
            const subnet = ipv4 === undefined ? undefined : parseCidr('subnet', ipv4.subnet);
            if (subnet !== undefined && (!isHostAddress(subnet, address) || n.ip === ipv4!.gateway)) {
              issue(t.doc, ['nics', i, 'ip'], `instance ${v.name}: ip: ${n.ip} is not a guest address of network ${n.network} (${ipv4!.subnet}, gateway ${ipv4!.gateway})`);
            }
          }
        });
        if (v.image !== undefined && nics[0]?.network !== USER_NETWORK) {
          issue(t.doc, v.nics === undefined ? ['image'] : ['nics', 0], `instance ${v.name}: an instance launched from an image has NIC 0 on user (virtnode reaches it over SSH through it)`, 'start nics with - network: user');
        }
        out.nics = nics.map((n) => ({ network: n.network, ...(n.ip === undefined ? {} : { ip: n.ip }) }));
        out.volumes = [...(v.volumes ?? [])];
        out.volumes.forEach((name, i) => {
          if (!volumes.has(name)) issue(t.doc, ['volumes', i], `instance ${v.name}: there is no volume ${name}`, 'define it in the stack (kind: volume) or create it first');
          const user = volumeUsers.get(name);
          if (user !== undefined) issue(t.doc, ['volumes', i], `instance ${v.name}: volume ${name} is also a disk of instance ${user}`, 'two VMs writing one disk corrupt it');
          volumeUsers.set(name, v.name);
        });
        out.ports = [];
        (v.ports ?? []).forEach((text, i) => field(['ports', i], () => out.ports!.push(parsePortForward(text, undefined))));
        if (v.userData !== undefined) {
          if (v.image === undefined) issue(t.doc, ['userData'], `instance ${v.name}: userData needs an image (a kernel boot has no cloud-init seed)`);
          out.userData = v.userData;
          out.userDataSha256 = createHash('sha256').update(v.userData).digest('hex');
        }
        if (v.sshAuthorizedKeys !== undefined) out.sshAuthorizedKeys = v.sshAuthorizedKeys;
        if (issues.length === before) desired.push({ ...(out as DesiredInstance), doc: t.doc });
      }
    }
  }
  return { desired, issues };
}

function pick<T extends object, K extends keyof T>(value: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (value[k] !== undefined) out[k] = value[k];
  return out;
}

interface SchemaIssue {
  path: Path;
  message: string;
  hint?: string;
  key?: boolean;
}

/** The schema's complaints about one document, each at the place it concerns, in words a user reads. */
export function schemaErrors(schema: TSchema, value: unknown): SchemaIssue[] {
  const kind = String((value as Record<string, unknown>)['kind']);
  const name = (value as Record<string, unknown>)['name'];
  const who = typeof name === 'string' && checkSchema({ type: 'string', pattern: NAME_PATTERN }, name).length === 0 ? `${kind} ${name}` : kind;
  return checkSchema(schema as SchemaNode, value).map((e) => {
    const parent = e.keyword === 'additionalProperties' ? e.path.slice(0, -1) : e.path;
    const field = e.keyword === 'additionalProperties' || parent.length === 0 ? '' : `${parent.join('.')}: `;
    if (e.keyword === 'additionalProperties') {
      const known = Object.keys((schemaAt(schema, parent) as { properties?: object }).properties ?? {});
      return { path: e.path, key: true, message: `${who}: ${parent.length === 0 ? '' : `${parent.join('.')}: `}${e.message}`, hint: `known fields: ${known.join(', ')}` };
    }
    if (e.keyword === 'pattern') {
      return { path: e.path, message: `${who}: ${field}${JSON.stringify(valueAt(value, e.path))} is not a valid name`, hint: 'use 1-63 lowercase letters, digits and hyphens (a DNS label)' };
    }
    return { path: e.path, message: `${who}: ${field}${e.message}${e.keyword === 'type' ? `, not ${describe(valueAt(value, e.path))}` : ''}` };
  });
}

function valueAt(value: unknown, path: Path): unknown {
  let v = value;
  for (const p of path) v = (v as Record<string | number, unknown> | undefined)?.[p];
  return v;
}

function schemaAt(schema: TSchema, path: Path): TSchema {
  let s = schema as { properties?: Record<string, TSchema>; items?: TSchema };
  for (const p of path) s = (typeof p === 'number' ? s.items : s.properties?.[p]) ?? {};
  return s as TSchema;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

export type { Desired };
