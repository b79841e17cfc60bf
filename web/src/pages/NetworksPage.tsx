import { useState } from 'preact/hooks';
import { client, type Network } from '../api.ts';
import { Field, FormError } from '../components/Field.tsx';
import { Listing } from '../components/Listing.tsx';
import { message, when } from '../lib/format.ts';
import { useForm } from '../lib/use-form.ts';
import { useResource } from '../lib/use-resource.ts';
import * as v from '../lib/validate.ts';
import { TableHead } from '../components/TableHead.tsx';

type Mode = 'nat' | 'isolated' | 'bridge';

function CreateNetwork({ onCreated }: { onCreated: (n: Network) => void }) {
  const form = useForm({ name: '', mode: 'nat', subnet: '', dhcpRange: '', bridge: '' }, (values) =>
    values.mode === 'bridge' ? { name: v.name, bridge: v.bridgeName } : { name: v.name, subnet: v.optional(v.cidr), dhcpRange: v.optional(v.dhcpRange) },
  );
  const [error, setError] = useState<string | undefined>();
  const bridged = form.values.mode === 'bridge';
  const send = form.submit((values) => {
    setError(undefined);
    const mode = values.mode as Mode;
    const body =
      mode === 'bridge'
        ? { name: values.name, mode, bridge: values.bridge.trim() }
        : { name: values.name, mode, ...(values.subnet.trim() === '' ? {} : { subnet: values.subnet.trim() }), ...(values.dhcpRange.trim() === '' ? {} : { dhcpRange: values.dhcpRange.trim() }) };
    client.networks.create(body).then(
      (network) => {
        form.reset();
        onCreated(network);
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="create-network-title" onSubmit={send} noValidate>
      <h2 id="create-network-title">Create a network</h2>
      <Field id="network-name" label="Name" error={form.shown('name')}>
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <Field id="network-mode" label="Mode">
        {(p) => (
          <select {...p} {...form.bind('mode')} onChange={(e) => form.set('mode', (e.target as HTMLSelectElement).value)}>
            <option value="nat">NAT (private subnet, outbound through the host)</option>
            <option value="isolated">isolated (private subnet, no way out)</option>
            <option value="bridge">bridged (join an existing bridge)</option>
          </select>
        )}
      </Field>
      {bridged ? (
        <Field id="network-bridge" label="Bridge" error={form.shown('bridge')} hint="an existing Linux bridge, e.g. br0">
          {(p) => <input {...p} {...form.bind('bridge')} />}
        </Field>
      ) : (
        <>
          <Field id="network-subnet" label="Subnet" error={form.shown('subnet')} hint="IPv4 CIDR; default: a free /24">
            {(p) => <input {...p} {...form.bind('subnet')} placeholder="10.77.0.0/24" />}
          </Field>
          <Field id="network-dhcp" label="DHCP range" error={form.shown('dhcpRange')} hint="optional: FIRST-LAST">
            {(p) => <input {...p} {...form.bind('dhcpRange')} />}
          </Field>
        </>
      )}
      <button type="submit">Create network</button>
      <FormError error={error} />
    </form>
  );
}

/** One network as `get` tells it: with what runs for it on the host (bridge, dnsmasq, nftables). */
function NetworkDetails({ listed, onRemoved }: { listed: Network; onRemoved: () => void }) {
  const info = useResource(() => client.networks.get({ name: listed.name }), (e) => e.type === 'instance', [listed.name, (listed.instances ?? []).join(',')]);
  const network = info.data ?? listed;
  const leases = useResource(() => (network.mode === 'bridge' ? Promise.resolve([]) : client.networks.leases({ name: network.name })), (e) => e.type === 'instance', [network.name]);
  const [error, setError] = useState<string | undefined>();
  const remove = () => {
    if (!window.confirm(`Remove network ${network.name}?`)) return;
    setError(undefined);
    client.networks.delete({ name: network.name }).then(onRemoved, (e: unknown) => setError(message(e)));
  };
  const facts: Array<[string, string]> = [
    ['Mode', network.mode],
    ['Bridge', `${network.bridge}${network.bridgeExists === false ? ' (missing on the host)' : ''}`],
    ['Subnet', network.subnet ?? '–'],
    ['Gateway', network.gateway ?? '–'],
    ['DHCP range', network.dhcpRange ?? '–'],
    ['Domain', network.domain ?? '–'],
    ['State', network.up === undefined ? '–' : network.up ? 'up' : 'down'],
    ['DHCP server', network.dnsmasqPid === undefined ? (network.dhcpHost === undefined ? '–' : `on host ${network.dhcpHost}`) : `dnsmasq, pid ${network.dnsmasqPid}`],
    ['Cluster', network.cluster !== true ? '–' : network.vni === undefined ? 'cluster-wide (the bridge on each host)' : `cluster-wide, VXLAN ${network.vni}${network.vxlanExists === false ? ' (missing here)' : ''}`],
    ['Firewall', network.nftTable === undefined ? '–' : `${network.nftTable}${network.nftTableExists === false ? ' (missing)' : ''}`],
    ['Created', when(network.createdAt)],
  ];
  return (
    <section class="card" aria-labelledby={`network-${network.name}-title`} data-testid={`network-${network.name}`}>
      <header class="page-header">
        <h2 id={`network-${network.name}-title`}>Network {network.name}</h2>
        <button type="button" class="danger" onClick={remove}>
          Remove network
        </button>
      </header>
      <FormError error={error} />
      {network.warnings?.map((w) => <p class="warning">{w}</p>)}
      <table class="facts">
        <tbody>
          {facts.map(([k, value]) => (
            <tr>
              <th scope="row">{k}</th>
              <td>{value}</td>
            </tr>
          ))}
          <tr>
            <th scope="row">Instances</th>
            <td data-testid="network-instances">
              {(network.instances ?? []).length === 0
                ? 'none'
                : network.instances!.map((i, n) => (
                    <>
                      {n > 0 && ', '}
                      <a href={`#/instances/${encodeURIComponent(i)}`}>{i}</a>
                    </>
                  ))}
            </td>
          </tr>
        </tbody>
      </table>
      {network.mode !== 'bridge' && (
        <>
          <h3>DHCP leases</h3>
          {leases.error !== undefined && <p class="error">{leases.error}</p>}
          <Listing items={leases.data} empty="No leases." emptyTestId="no-leases">
            {(items) => (
              <table data-testid="leases">
                <TableHead columns={['Address', 'MAC', 'Instance', 'Host name', 'Expires']} />
                <tbody>
                  {items.map((l) => (
                    <tr>
                      <td>{l.address}</td>
                      <td>{l.mac}</td>
                      <td>{l.instance ?? '–'}</td>
                      <td>{l.hostname ?? '–'}</td>
                      <td>{l.expires === undefined ? 'never' : when(l.expires)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Listing>
        </>
      )}
    </section>
  );
}

/** Managed networks: list, create (validated as typed), details with leases and users, remove. */
export function NetworksPage({ selected }: { selected: string | undefined }) {
  const networks = useResource(() => client.networks.list(), (e) => e.type === 'instance');
  const current = networks.data?.find((n) => n.name === selected);
  return (
    <section>
      <header class="page-header">
        <h1>Networks</h1>
      </header>
      <FormError error={networks.error} />
      <Listing items={networks.data} empty="No managed networks. Instances use QEMU's user-mode networking until you make one.">
        {(items) => (
          <table data-testid="networks">
            <TableHead columns={['Name', 'Mode', 'Subnet', 'Bridge', 'State', 'Instances']} />
            <tbody>
              {items.map((n) => (
                <tr data-network={n.name} aria-current={n.name === selected ? 'true' : undefined}>
                  <td>
                    <a href={`#/networks/${encodeURIComponent(n.name)}`}>{n.name}</a>
                  </td>
                  <td>{n.mode}</td>
                  <td>{n.subnet ?? '–'}</td>
                  <td>{n.bridge}</td>
                  <td>{n.up === undefined ? '–' : n.up ? 'up' : 'down'}</td>
                  <td>{(n.instances ?? []).length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listing>
      {current !== undefined && (
        <NetworkDetails
          listed={current}
          onRemoved={() => {
            location.hash = '#/networks';
            void networks.reload();
          }}
        />
      )}
      <CreateNetwork
        onCreated={(n) => {
          void networks.reload();
          location.hash = `#/networks/${encodeURIComponent(n.name)}`;
        }}
      />
    </section>
  );
}
