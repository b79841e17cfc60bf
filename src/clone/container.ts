import { statSync } from 'node:fs';
import { setHostKeys } from '../cloudinit/known-hosts.ts';
import type { CoreContext } from '../core/context.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { createLayer, ensureLayer } from '../instances/drivers/lxc/layer.ts';
import { copyUpper, extractUpper, sealUpper } from '../instances/drivers/lxc/upper.ts';
import { allowTraversal, writeContainerFirstBoot } from '../instances/launch-container.ts';
import type { ContainerSpec, ImageRef, Instance, InstanceSpec } from '../instances/model.ts';
import { InstanceService } from '../instances/service.ts';
import type { Template } from '../templates/model.ts';
import type { SealResult } from '../templates/seal.ts';
import type { CloneOptions, CloneResult } from './types.ts';
import { inheritedSpec, makeCloneSeed } from './identity.ts';

/**
 * A container's clone: a copy of the source's upper directory (or the template's sealed tar) in a writable layer of
 * its own (an ext4 image of the same size when the source has a disk size), on the same shared
 * lower tree, its identity files removed, and a new NoCloud seed written in: new instance-id, hostname, host keys,
 * and (from `define`) new MACs and addresses. systemd fills the emptied machine-id at first boot.
 */
export async function cloneContainer(core: CoreContext, name: string, from: { template: Template | undefined; source: Instance | undefined }, options: CloneOptions = {}): Promise<CloneResult> {
  const { template, source } = from;
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const container: ContainerSpec | undefined = template !== undefined ? template.defaults.container : source!.spec.container;
  if (container === undefined) throw new VirtnodeError('INTERNAL', `${template?.name ?? source!.name} is a container without a container spec`);
  const image: ImageRef | undefined = template !== undefined ? template.image : source!.spec.image;
  const defaults = template?.defaults ?? { ...source!.spec, networks: source!.nics.map((n) => n.network) };
  const user = template !== undefined ? template.defaults.user : source!.spec.ssh?.user;
  const owner = container.idmapBase ?? 0;
  const draft: InstanceSpec = { ...inheritedSpec(defaults), container, ...(image === undefined ? {} : { image }) };
  const nics = defaults.networks.map((network) => ({ network }));
  let seal: SealResult | undefined;
  const instance = await new InstanceService(core).define(name, draft, { nics, type: 'container', ...signal }, async (dir, reverter) => {
    // Its own layer, of the source's size when it has one: the files are copied, never shared.
    const files = await createLayer(dir, container, owner, { reverter, ...signal });
    if (template !== undefined) {
      await extractUpper(template.diskPath, files.upper, signal);
    } else {
      const from = await ensureLayer(core.paths.instanceDir(source!.name), source!.spec.container!);
      await copyUpper(from.upper, files.upper, signal);
    }
    const upperOwner = statSync(files.upper).uid;
    if (upperOwner !== owner) throw new VirtnodeError('INTERNAL', `the copied root of ${name} is owned by uid ${upperOwner}, not ${owner}`);
    if (container.idmapBase !== undefined) allowTraversal(core.paths.root, dir);
    failpoint('clone.after-disk');
    const removed = sealUpper(files.upper);
    if (template === undefined) seal = { method: 'offline', root: files.upper, changes: removed.map((r) => `removed ${r}`), summary: `sealed the copy of ${source!.name}'s upper directory (${removed.length} identity paths removed)` };
    const seed = await makeCloneSeed(core, dir, name, { user, ...signal });
    writeContainerFirstBoot(files.upper, { ...seed.files }, owner);
    failpoint('clone.after-seal');
    const address = core.repos.instances.get(name)!.nics.find((n) => n.address !== undefined)?.address;
    const ssh = seed.ssh === undefined ? undefined : { ...seed.ssh, ...(address === undefined ? {} : { address }) };
    if (address !== undefined && ssh !== undefined) await setHostKeys(core.paths.knownHosts, [address], seed.hostPublicKeys, { marker: name });
    return { ...draft, instanceId: seed.instanceId, ...(ssh === undefined ? {} : { ssh }) };
  });
  return { instance, mode: 'full', from: template === undefined ? 'instance' : 'template', seal };
}
