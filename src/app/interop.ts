/**
 * Other tools' formats, implemented once over the core: Ansible's dynamic inventory, an instance as a libvirt
 * domain XML, and an instance defined from one. An imported domain's disk files are used where they are
 * (referenced, like `virtnode create --disk`): never copied, moved or deleted by virtnode, so a large disk is
 * imported at once and `virtnode delete` leaves it. The domain must not run in libvirt at the same time.
 */
import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { interopEndpoints } from '../api/contracts/interop.ts';
import type { InstanceView } from '../api/schemas.ts';
import { buildInventory } from '../interop/ansible-inventory.ts';
import { exportLibvirtDomain } from '../interop/libvirt-export.ts';
import { type ImportedDomain, type ImportWarning, readLibvirtDomain } from '../interop/libvirt-import.ts';
import { virshDumpXml } from '../interop/virsh.ts';
import type { DiskSpec, InstanceSpec, Tuning } from '../instances/model.ts';
import { fitTuning } from '../instances/tuning.ts';
import { tuningHostFacts } from '../host/tuning-facts.ts';
import { USER_NETWORK } from '../instances/model.ts';
import type { NicRequest } from '../instances/nic-request.ts';
import { validateCpus, validateMemory } from '../host/limits.ts';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { imageInfo } from '../qemu/img.ts';
import type { AppCore } from './context.ts';
import { instances } from './instances.ts';
import { checkRequestPath } from './request-paths.ts';
import { type Caller, resource } from './resource.ts';
import { instanceView } from './views.ts';

type ImportedDisks = Array<DiskSpec & { location: string }>;

/** Each disk file exists, is qcow2 or raw (as the XML says, when it says), and is no other instance's. */
async function checkDisks(core: AppCore, domain: ImportedDomain, caller: Caller | undefined): Promise<ImportedDisks> {
  const disks: ImportedDisks = [];
  for (const [i, d] of domain.disks.entries()) {
    const field = `${d.location}/source`;
    checkRequestPath(core.remotePaths, caller, field, d.path, 'file');
    if (!existsSync(d.path) || statSync(d.path).isDirectory()) throw invalid(field, `${d.path} does not exist or is not a file`, 'the disk files must be on this host, at the paths the XML names');
    const info = await imageInfo(d.path, d.format === undefined ? {} : { format: d.format });
    const format = d.format ?? info.format;
    if (format !== 'qcow2' && format !== 'raw') throw invalid(field, `${d.path} is a ${format} image`, `convert it: qemu-img convert -O qcow2 ${d.path} NEW.qcow2`);
    if (!d.readonly) core.instances.assertDiskUnused(d.path);
    disks.push({ id: `disk${i}`, path: d.path, format, owned: false, ...(d.readonly ? { readonly: true } : {}), location: d.location });
  }
  return disks;
}

/** libvirt networks and bridges become the virtnode network of that name or bridge; else the NIC is user-mode. */
function mapNics(core: AppCore, domain: ImportedDomain, warnings: ImportWarning[]): NicRequest[] {
  const networks = core.core.networks.list();
  return domain.nics.map((nic) => {
    const mac = nic.mac === undefined ? {} : { mac: nic.mac };
    if (nic.source.kind === 'user') return { network: USER_NETWORK, ...mac };
    const { kind, name } = nic.source;
    const match = kind === 'network' ? networks.find((n) => n.name === name) : networks.find((n) => n.mode === 'bridge' && n.bridge === name);
    if (match !== undefined) return { network: match.name, ...mac };
    warnings.push({
      path: `${nic.location}/source/@${kind}`,
      message: `no virtnode network ${kind === 'network' ? `named ${name}` : `on bridge ${name}`}: the NIC is user-mode (create one with \`virtnode network create\`, then import again)`,
    });
    return { network: USER_NETWORK, ...mac };
  });
}

/** The domain's tuning that fits this instance and host; a knob that does not is left out with a warning. */
async function fittedTuning(core: AppCore, domain: ImportedDomain, size: { cpus: number; memoryMiB: number; nics: NicRequest[] }, warnings: ImportWarning[]): Promise<Tuning> {
  if (Object.keys(domain.tuning).length === 0) return {};
  const tapNics = size.nics.filter((n) => n.network !== USER_NETWORK).length;
  const { tuning, dropped } = fitTuning(domain.tuning, { cpus: size.cpus, memoryMiB: size.memoryMiB, tapNics, ...(domain.accel === 'tcg' ? { accel: 'tcg' as const } : {}) }, await tuningHostFacts(core.paths.root));
  for (const d of dropped) warnings.push({ path: '/domain', message: `${d.knob} not kept: ${d.message}` });
  return tuning;
}

export const interop = resource('interop', interopEndpoints, (core: AppCore) => {
  const instanceApi = instances.implement(core);
  return {
    async inventory() {
      const views: InstanceView[] = await instanceApi.list({});
      const key = core.paths.sshDir;
      return buildInventory(views, { host: hostname(), knownHosts: core.paths.knownHosts, identityFile: `${key}/id_ed25519` });
    },

    async export({ name, format }) {
      if (format !== 'libvirt') throw invalid('--format', `"${String(format)}" is not a format virtnode writes`, 'use libvirt');
      const instance = await core.instances.get(name);
      const { xml, warnings } = exportLibvirtDomain(instance, (n) => core.core.networks.list().find((net) => net.name === n));
      return { name: instance.name, format, document: xml, warnings };
    },

    async importLibvirt(input, caller) {
      if ((input.xml === undefined) === (input.from === undefined)) throw invalid('xml', 'give the domain XML or where to read it (from: {uri, domain}), one of the two');
      if (input.from !== undefined && caller?.remote === true) {
        throw new VirtnodeError('PERMISSION', "--from: only the host's own users may read its libvirt domains", { field: '--from', hint: 'send the XML instead (virsh dumpxml NAME > FILE)' });
      }
      const xml = input.xml ?? (await virshDumpXml(input.from!.uri, input.from!.domain));
      const { domain, warnings } = readLibvirtDomain(xml, { field: input.from === undefined ? 'xml' : `${input.from.uri} ${input.from.domain}` });
      const name = input.name ?? domain.name;
      try {
        validateName('name', name);
      } catch (e) {
        if (input.name !== undefined) throw e;
        throw invalid('/domain/name', `"${name}" is not a virtnode instance name (a DNS label)`, 'give one with --name');
      }
      const limits = core.core.limits;
      const cpus = validateCpus(input.cpus ?? domain.cpus, limits);
      const memoryMiB = validateMemory(input.memory ?? `${domain.memoryMiB}M`, limits);
      if (domain.boot !== undefined) {
        for (const [field, path] of [['/domain/os/kernel', domain.boot.kernel], ['/domain/os/initrd', domain.boot.initrd]] as const) {
          if (path === undefined) continue;
          checkRequestPath(core.remotePaths, caller, field, path, 'file');
          if (!existsSync(path)) throw invalid(field, `${path} does not exist`);
        }
      }
      const disks = await checkDisks(core, domain, caller);
      const nics = mapNics(core, domain, warnings);
      const tuning = await fittedTuning(core, domain, { cpus, memoryMiB, nics }, warnings);
      const spec: InstanceSpec = {
        cpus,
        memoryMiB,
        accel: domain.accel,
        disks: disks.map(({ location: _, ...d }) => d),
        ...(domain.boot === undefined ? {} : { boot: domain.boot }),
        ...(Object.keys(tuning).length === 0 ? {} : { tuning }),
      };
      const instance = await core.instances.define(name, spec, { nics, ...(domain.uuid === undefined ? {} : { uuid: domain.uuid }) }, async () => spec);
      return core.changed({
        instance: instanceView(instance, core.policies.get(instance.name)),
        warnings,
        disks: disks.map((d) => ({ path: d.path, format: d.format, use: 'referenced' as const })),
      });
    },
  };
});
