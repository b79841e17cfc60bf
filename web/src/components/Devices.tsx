import { useState } from 'preact/hooks';
import { client, type Instance } from '../api.ts';
import { bytes, message } from '../lib/format.ts';
import { useForm } from '../lib/use-form.ts';
import { useResource } from '../lib/use-resource.ts';
import * as v from '../lib/validate.ts';
import { Field, FormError } from './Field.tsx';
import { TableHead } from './TableHead.tsx';

const LIVE = ['running', 'paused'];

/** Whether a device change takes effect now or when the instance next starts. */
function changeClass(instance: Instance): string {
  return LIVE.includes(instance.state) ? 'applies live (hot-plug) and is kept for the next start' : 'applies at the next start';
}

function Disks({ instance, onError }: { instance: Instance; onError: (m: string) => void }) {
  const refresh = (e: { type: string }) => e.type === 'instance';
  const volumes = useResource(() => client.volumes.list({}), refresh, [instance.name]);
  const own = useResource(() => client.volumes.instanceDisks(), refresh, [instance.name]);
  const [choice, setChoice] = useState('');
  const attached = (volumes.data ?? []).filter((vol) => vol.attachedTo === instance.name);
  const free = (volumes.data ?? []).filter((vol) => vol.attachedTo === undefined && vol.state === 'ready');
  const change = (work: Promise<unknown>) =>
    work.then(
      () => {
        void volumes.reload();
        setChoice('');
      },
      (e: unknown) => onError(message(e)),
    );
  return (
    <section aria-labelledby="disks-title">
      <h2 id="disks-title">Disks</h2>
      <FormError error={own.error ?? volumes.error} />
      <table data-testid="disks">
        <TableHead columns={['Disk', 'Kind', 'Format', 'Size']} actions />
        <tbody>
          {(own.data ?? []).filter((d) => d.instance === instance.name).map((d) => (
            <tr>
              <td class="wrap">{d.id}</td>
              <td>its own disk</td>
              <td>{d.format}</td>
              <td>{bytes(d.virtualSize)}</td>
              <td />
            </tr>
          ))}
          {attached.map((vol) => (
            <tr data-disk={vol.name}>
              <td>{vol.name}</td>
              <td>volume ({vol.pool})</td>
              <td>{vol.format}</td>
              <td>{bytes(vol.virtualSize)}</td>
              <td>
                <button type="button" aria-label={`Detach volume ${vol.name}`} onClick={() => void change(client.disks.detach({ name: instance.name, volume: vol.name }))}>
                  Detach
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="row-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (choice !== '') void change(client.disks.attach({ name: instance.name, volume: choice }));
        }}
      >
        <label for="attach-volume">Attach a volume</label>
        <select id="attach-volume" name="volume" value={choice} onChange={(e) => setChoice((e.target as HTMLSelectElement).value)}>
          <option value="">choose…</option>
          {free.map((vol) => (
            <option value={vol.name}>
              {vol.name} ({bytes(vol.virtualSize)})
            </option>
          ))}
        </select>
        <button type="submit" disabled={choice === ''}>
          Attach
        </button>
        <span class="muted" data-testid="disk-change-class">
          {changeClass(instance)}
        </span>
      </form>
    </section>
  );
}

function Nics({ instance, onError }: { instance: Instance; onError: (m: string) => void }) {
  const nics = useResource(() => client.nics.list({ name: instance.name }), (e) => e.type === 'instance', [instance.name]);
  const networks = useResource(() => client.networks.list(), () => false);
  const form = useForm({ network: 'user', ip: '' }, (values) => (values.network === 'user' ? {} : { ip: v.optional(v.ipv4Address) }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    client.nics.attach({ name: instance.name, network: values.network, ...(values.ip.trim() === '' || values.network === 'user' ? {} : { ip: values.ip.trim() }) }).then(
      () => {
        form.reset();
        void nics.reload();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <section aria-labelledby="nics-title">
      <h2 id="nics-title">Network interfaces</h2>
      <FormError error={nics.error ?? networks.error} />
      <table data-testid="nics">
        <TableHead columns={['#', 'Network', 'MAC', 'Addresses']} actions />
        <tbody>
          {(nics.data ?? []).map((n) => (
            <tr data-nic={n.index}>
              <td>{n.index}</td>
              <td>{n.network}</td>
              <td>{n.mac}</td>
              <td>{[...(n.guest ?? []), n.lease === undefined ? undefined : `${n.lease} (lease)`, n.reserved === undefined ? undefined : `${n.reserved} (${n.staticAddress ? 'static' : 'reserved'})`].filter((x) => x !== undefined).join(', ') || '–'}</td>
              <td>
                <button
                  type="button"
                  aria-label={`Remove NIC ${n.index} (${n.mac})`}
                  onClick={() => client.nics.detach({ name: instance.name, nic: n.mac }).then(() => void nics.reload(), (e: unknown) => onError(message(e)))}
                >
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="inline-form" aria-labelledby="add-nic-title" onSubmit={send} noValidate>
        <h3 id="add-nic-title">Add a network interface</h3>
        <Field id="nic-network" label="Network">
          {(p) => (
            <select {...p} {...form.bind('network')} onChange={(e) => form.set('network', (e.target as HTMLSelectElement).value)}>
              <option value="user">user (QEMU's NAT)</option>
              {(networks.data ?? []).map((n) => (
                <option value={n.name}>
                  {n.name} ({n.mode})
                </option>
              ))}
            </select>
          )}
        </Field>
        {form.values.network !== 'user' && (
          <Field id="nic-ip" label="Static address" error={form.shown('ip')} hint="optional; default: DHCP">
            {(p) => <input {...p} {...form.bind('ip')} />}
          </Field>
        )}
        <button type="submit">Add interface</button>
        <p class="muted form-note">{changeClass(instance)}</p>
        <FormError error={error} />
      </form>
    </section>
  );
}

function Ports({ instance }: { instance: Instance }) {
  const ports = useResource(() => client.ports.list({ name: instance.name }), (e) => e.type === 'instance', [instance.name]);
  const form = useForm({ ports: '', address: '' }, () => ({ ports: v.portForward, address: v.optional(v.ipv4Address) }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    client.ports.add({ name: instance.name, ports: values.ports.trim(), ...(values.address.trim() === '' ? {} : { address: values.address.trim() }) }).then(
      () => {
        form.reset();
        void ports.reload();
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <section aria-labelledby="ports-title">
      <h2 id="ports-title">Port forwards</h2>
      <FormError error={ports.error} />
      {(ports.data ?? []).length === 0 ? (
        <p class="muted">No port forwards.</p>
      ) : (
        <table data-testid="ports">
          <TableHead columns={['Host', 'Guest port', 'Protocol', 'Made by']} actions />
          <tbody>
            {(ports.data ?? []).map((f) => (
              <tr data-port={`${f.hostPort}/${f.protocol}`}>
                <td>
                  {f.hostAddress}:{f.hostPort}
                </td>
                <td>{f.guestPort}</td>
                <td>{f.protocol}</td>
                <td>{f.owner === 'ssh' ? 'virtnode (SSH)' : 'you'}</td>
                <td>
                  {f.owner !== 'ssh' && (
                    <button
                      type="button"
                      aria-label={`Remove forward of port ${f.hostPort}/${f.protocol}`}
                      onClick={() => client.ports.remove({ name: instance.name, port: `${f.hostPort}/${f.protocol}` }).then(() => void ports.reload(), (e: unknown) => setError(message(e)))}
                    >
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="inline-form" aria-labelledby="add-port-title" onSubmit={send} noValidate>
        <h3 id="add-port-title">Forward a host port</h3>
        <Field id="port-ports" label="Ports" error={form.shown('ports')} hint="HOST:GUEST[/tcp|udp], e.g. 8080:80">
          {(p) => <input {...p} {...form.bind('ports')} />}
        </Field>
        <Field id="port-address" label="Host address" error={form.shown('address')} hint="default 127.0.0.1">
          {(p) => <input {...p} {...form.bind('address')} />}
        </Field>
        <button type="submit">Add forward</button>
        <FormError error={error} />
      </form>
    </section>
  );
}

/** An instance's disks, NICs and port forwards, each managed here. */
export function Devices({ instance, onError }: { instance: Instance; onError: (m: string) => void }) {
  return (
    <div class="devices">
      <Disks instance={instance} onError={onError} />
      <Nics instance={instance} onError={onError} />
      <Ports instance={instance} />
    </div>
  );
}
