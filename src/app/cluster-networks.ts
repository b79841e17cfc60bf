/**
 * Networks across the hosts of a cluster: definitions in etcd (src/cluster/networks-etcd.ts), realized on every
 * host by its daemon. A loop watches the definitions, the hosts' NIC records and which hosts are online, and on
 * each change records new definitions here, tears removed ones down, and brings every cluster nat/isolated network
 * up: its bridge, its VXLAN flooding to the online hosts, and on its DHCP host dnsmasq with every host's
 * reservations. A network whose DHCP host went offline is taken over by one online host (a host going offline is
 * one of the changes watched); a host that lost the role drops it before anything of it comes up again. A periodic pass repairs what a missed event or a failed step left.
 */
import { EtcdNetworks, NETWORK_KEYS } from '../cluster/networks-etcd.ts';
import { KEYS } from '../cluster/model.ts';
import type { ClusterService } from '../cluster/service.ts';
import { serialPasses } from '../lib/serial-passes.ts';
import type { AppCore } from './context.ts';

const REPAIR_MS = 30_000;
const DEBOUNCE_MS = 100;

const log = (c: ClusterService, level: 'info' | 'warn', msg: string, fields: Record<string, unknown> = {}) =>
  process.stderr.write(`${JSON.stringify({ level, msg, component: 'networks', host: c.host, at: new Date().toISOString(), ...fields })}\n`);

/** The core's networks span the cluster of `c` (its calls go through the host's own etcd member in the daemon). */
export function attachNetworkSpan(app: AppCore, c: ClusterService): void {
  app.core.networks.span = new EtcdNetworks(
    () => c.localKv(),
    () => (c.config === undefined ? undefined : { host: c.config.host, address: c.config.address }),
    () => c.fenced !== undefined,
  );
}

/** This host fenced itself: the DHCP/DNS and gateway roles it holds are dropped at once (see dropDhcpRoles). */
export function dropNetworkRolesOnFence(app: AppCore, c: ClusterService): void {
  app.core.networks
    .dropDhcpRoles()
    .then((names) => {
      if (names.length > 0) log(c, 'warn', 'fenced: DHCP/DNS and gateway dropped before the lease can expire', { networks: names });
    })
    .catch((e: unknown) => log(c, 'warn', 'fenced: DHCP/DNS and gateway not dropped', { err: e instanceof Error ? e.message : String(e) }));
}

/** The daemon's loop realizing the cluster's networks here (see the top of this file). */
export function networksLoop(app: AppCore, c: ClusterService): { stop: () => Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const passes = serialPasses(
    async () => {
      const networks = app.core.networks;
      for (const note of await networks.pullCluster()) log(c, 'info', note);
      const { notes, errors } = await networks.realizeCluster();
      for (const note of notes) log(c, 'info', note);
      for (const err of errors) log(c, 'warn', 'cluster network not realized here', { err });
    },
    (e: unknown) => log(c, 'warn', 'cluster networks pass failed', { err: e instanceof Error ? e.message : String(e) }),
  );
  const run = () => passes.request();
  const poke = () => {
    if (stopped || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      run();
    }, DEBOUNCE_MS);
  };
  // Hosts' live records are rewritten every few seconds: only a host coming or going changes the flood lists.
  const online = new Set<string>();
  const repair = setInterval(run, REPAIR_MS);
  repair.unref();
  const watches = Promise.all([
    c.localKv().watch(NETWORK_KEYS.networks, () => poke()),
    c.localKv().watch(NETWORK_KEYS.nicsAll, () => poke()),
    c.localKv().watch(KEYS.alives, (event) => {
      const key = event.type === 'put' ? event.entry.key : event.key;
      const had = online.has(key);
      if (event.type === 'put') online.add(key);
      else online.delete(key);
      if (had !== (event.type === 'put')) poke();
    }),
  ]).catch((e: unknown) => {
    log(c, 'warn', 'cluster networks not watched', { err: String(e) });
    return [];
  });
  void c
    .localKv()
    .list(KEYS.alives)
    .then((l) => {
      for (const e of l.entries) online.add(e.key);
    })
    .catch(() => undefined)
    .finally(run);
  return {
    stop: async () => {
      stopped = true;
      clearInterval(repair);
      if (timer !== undefined) clearTimeout(timer);
      for (const w of await watches) await w.cancel().catch(() => undefined);
      await passes.stop();
    },
  };
}
