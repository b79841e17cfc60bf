/** The cluster contract, implemented once over the core's ClusterService (src/cluster/service.ts). */
import { clusterEndpoints } from '../api/contracts/cluster.ts';
import { invalid } from '../lib/errors.ts';
import type { AppCore } from './context.ts';
import { checkRequestPath } from './request-paths.ts';
import { type Caller, resource } from './resource.ts';

interface EtcdFileInput {
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
}

/** --etcd-ca/--etcd-cert/--etcd-key: all three or none. */
function etcdFiles(core: AppCore, input: EtcdFileInput, caller: Caller | undefined): { ca: string; cert: string; key: string } | undefined {
  const given = [input.etcdCa, input.etcdCert, input.etcdKey].filter((x) => x !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3) throw invalid(input.etcdCa === undefined ? 'etcd-ca' : input.etcdCert === undefined ? 'etcd-cert' : 'etcd-key', 'give --etcd-ca, --etcd-cert and --etcd-key together');
  checkRequestPath(core.remotePaths, caller, 'etcd-ca', input.etcdCa!, 'file');
  checkRequestPath(core.remotePaths, caller, 'etcd-cert', input.etcdCert!, 'file');
  checkRequestPath(core.remotePaths, caller, 'etcd-key', input.etcdKey!, 'file');
  return { ca: input.etcdCa!, cert: input.etcdCert!, key: input.etcdKey! };
}

export const cluster = resource('cluster', clusterEndpoints, (core: AppCore) => ({
  async status() {
    return (await core.cluster()).status();
  },

  async init(input, caller) {
    const files = etcdFiles(core, input, caller);
    if ((input.etcd === undefined) !== (files === undefined)) throw invalid(files === undefined ? 'etcd-ca' : 'etcd', '--etcd URL,... and --etcd-ca/--etcd-cert/--etcd-key go together');
    if (input.etcd !== undefined) for (const url of input.etcd) if (!/^https?:\/\/[^/]+$/.test(url)) throw invalid('etcd', `"${url}" is not an etcd client URL (https://HOST:PORT)`);
    return (await core.cluster()).init({
      address: input.address,
      ...(input.host === undefined ? {} : { host: input.host }),
      ...(input.apiPort === undefined ? {} : { apiPort: input.apiPort }),
      ...(input.labels === undefined ? {} : { labels: input.labels }),
      ...(input.etcd === undefined || files === undefined ? {} : { etcd: { urls: input.etcd, ...files } }),
    });
  },

  async add({ host }) {
    return (await core.cluster()).add(host);
  },

  async join(input, caller) {
    const files = etcdFiles(core, input, caller);
    return (await core.cluster()).join({
      token: input.token,
      address: input.address,
      ...(input.apiPort === undefined ? {} : { apiPort: input.apiPort }),
      ...(input.labels === undefined ? {} : { labels: input.labels }),
      ...(files === undefined ? {} : { etcd: files }),
    });
  },

  async remove({ host, force }) {
    return (await core.cluster()).remove(host, force === true);
  },

  async recover() {
    return (await core.cluster()).recover();
  },

  async evacuate({ host }) {
    return (await import('./cluster-moves.ts')).evacuate(core, { host });
  },

  async restore({ host }) {
    return (await import('./cluster-moves.ts')).restore(core, { host });
  },

  async rebalance(input) {
    return (await import('./cluster-moves.ts')).rebalance(core, input ?? {});
  },
}));
