import { api, type Instance, type Operation } from '../api.ts';
import { bytes } from '../lib/format.ts';
import { Actions } from '../components/Actions.tsx';
import { Devices } from '../components/Devices.tsx';
import { Metrics } from '../components/Metrics.tsx';
import { MoveForm } from '../components/MoveForm.tsx';
import { Settings } from '../components/Settings.tsx';
import { Snapshots } from '../components/Snapshots.tsx';
import { SerialConsole } from '../components/SerialConsole.tsx';
import { VncConsole } from '../components/VncConsole.tsx';
import type { Live } from '../store.ts';

export type Tab = 'overview' | 'devices' | 'settings' | 'metrics' | 'serial' | 'vnc' | 'snapshots';
const TABS: Array<[Tab, string]> = [
  ['overview', 'Overview'],
  ['devices', 'Disks & network'],
  ['settings', 'Settings'],
  ['metrics', 'Metrics'],
  ['serial', 'Serial console'],
  ['vnc', 'Graphical console'],
  ['snapshots', 'Snapshots'],
];
const LIVE = ['running', 'paused'];

function Row({ label, children }: { label: string; children: preact.ComponentChildren }) {
  return (
    <tr>
      <th>{label}</th>
      <td>{children}</td>
    </tr>
  );
}

/** What is known of a NIC's addresses: seen in the guest (agent), leased (DHCP), or reserved. */
function nicAddresses(n: Instance['nics'][number]): string {
  const parts: string[] = [];
  if (n.guestAddresses !== undefined && n.guestAddresses.length > 0) parts.push(n.guestAddresses.join(', '));
  else if (n.lease !== undefined) parts.push(`${n.lease} (DHCP lease)`);
  if (n.address !== undefined && parts.length === 0) parts.push(`${n.address} (${n.staticAddress ? 'static' : 'reserved'})`);
  return parts.length === 0 ? '' : ` — ${parts.join(' ')}`;
}

function Overview({ instance, operations }: { instance: Instance; operations: Operation[] }) {
  return (
    <div class="overview">
      <table class="facts">
        <tbody>
          <Row label="State">
            <span class={`state state-${instance.state}`}>{instance.state}</span> {instance.reason ?? ''}
          </Row>
          <Row label="CPUs / memory">
            {instance.cpus} / {instance.memoryMiB} MiB ({instance.accel})
          </Row>
          {instance.container !== undefined && (
            <Row label="Container">
              {instance.container.privileged ? 'privileged (root on the host)' : 'unprivileged'}, at most {instance.container.maxProcesses} processes, disk{' '}
              {instance.container.diskSizeBytes === undefined ? 'without a limit' : `limited to ${bytes(instance.container.diskSizeBytes)}`}
            </Row>
          )}
          <Row label="Source">{instance.image !== undefined ? `image ${instance.image.name}` : instance.boot !== undefined ? `kernel ${instance.boot.kernel}` : '–'}</Row>
          <Row label="SSH">
            {instance.ssh?.address !== undefined ? `${instance.ssh.user}@${instance.ssh.address.replace(/:(\d+)$/, ' port $1')} (virtnode shell ${instance.name})` : '–'}
          </Row>
          <Row label="Addresses">
            {instance.nics.length === 0 ? (
              'no network'
            ) : (
              <ul class="plain" data-testid="addresses">
                {instance.nics.map((n) => (
                  <li>
                    {n.network} {n.mac}
                    {nicAddresses(n)}
                  </li>
                ))}
              </ul>
            )}
          </Row>
          {instance.portForwards !== undefined && instance.portForwards.length > 0 && (
            <Row label="Port forwards">{instance.portForwards.map((f) => `${f.hostAddress}:${f.hostPort} → ${f.guestPort}/${f.protocol}`).join(', ')}</Row>
          )}
          <Row label="UUID">{instance.uuid}</Row>
          <Row label="SMBIOS UUID">{instance.smbiosUuid}</Row>
          <Row label="Instance-id">{instance.instanceId ?? '–'}</Row>
          <Row label="Host keys">
            {instance.ssh?.hostKeyFingerprints.length ? (
              <ul class="plain">
                {instance.ssh.hostKeyFingerprints.map((f) => (
                  <li>
                    <code>{f}</code>
                  </li>
                ))}
              </ul>
            ) : (
              '–'
            )}
          </Row>
          <Row label="Cloud-init">{instance.readiness !== undefined ? `${instance.readiness.phase}: ${instance.readiness.detail} (${instance.readiness.at})` : '–'}</Row>
          <Row label="Disks">{instance.disks.map((d) => `${d.id} ${d.format} ${d.path}`).join(', ') || '–'}</Row>
          <Row label="QEMU pid">{instance.pid ?? '–'}</Row>
          {instance.host !== undefined && <Row label="Host">{instance.host}</Row>}
        </tbody>
      </table>
      {instance.host !== undefined && <MoveForm instance={instance} operations={operations} />}
      {operations.length > 0 && (
        <div class="operations">
          <h2>Operations</h2>
          {operations.map((op) => (
            <div class={`operation op-${op.status}`} data-testid="operation">
              <strong>{op.kind}</strong> {op.status}
              {op.error !== undefined && <span class="error"> {op.error.message}</span>}
              <ol>
                {op.progress.entries.map((e) => (
                  <li>
                    {e.phase} {e.detail} <span class="muted">{(e.elapsedMs / 1000).toFixed(1)} s</span>
                  </li>
                ))}
              </ol>
            </div>
          ))}
        </div>
      )}
    </div>
  );
}

export function InstancePage({ live, name, tab, onError }: { live: Live; name: string; tab: Tab; onError: (m: string) => void }) {
  const instance = live.instances.get(name);
  if (instance === undefined) {
    return <p class="muted">{live.loaded ? `Instance ${name} does not exist (or was deleted).` : 'loading…'}</p>;
  }
  const operations = [...live.operations.values()].filter((op) => op.target === `instances/${name}`).reverse();
  const running = LIVE.includes(instance.state);
  return (
    <section>
      <header class="page-header">
        <h1>
          {name}{' '}
          <span class={`state state-${instance.state}`} data-testid="instance-state">
            {instance.state}
          </span>
        </h1>
        <Actions instance={instance} onError={onError} onDeleted={() => (location.hash = '#/')} />
      </header>
      <nav class="tabs" role="tablist">
        {TABS.map(([id, label]) => (
          <a role="tab" aria-selected={tab === id} class={tab === id ? 'active' : ''} href={`#/instances/${name}/${id}`}>
            {label}
          </a>
        ))}
      </nav>
      {tab === 'overview' && <Overview instance={instance} operations={operations} />}
      {tab === 'devices' && <Devices instance={instance} onError={onError} />}
      {tab === 'settings' && <Settings instance={instance} />}
      {tab === 'metrics' && <Metrics name={name} />}
      {tab === 'serial' && (running ? <SerialConsole name={name} /> : <p class="muted">The console exists while the instance runs.</p>)}
      {tab === 'vnc' && (running ? <VncConsole name={name} /> : <p class="muted">The console exists while the instance runs.</p>)}
      {tab === 'snapshots' && <Snapshots instance={instance} onError={onError} />}
    </section>
  );
}
