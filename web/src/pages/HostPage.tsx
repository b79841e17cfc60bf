import { client } from '../api.ts';
import { bytes, duration } from '../lib/format.ts';
import { useResource } from '../lib/use-resource.ts';
import { TableHead } from '../components/TableHead.tsx';

/** A bar with its numbers in words (the bar is decoration; the text is what is read). */
function Usage({ label, used, total, testid }: { label: string; used: number; total: number; testid: string }) {
  const percent = total > 0 ? Math.round((100 * used) / total) : 0;
  return (
    <div class="usage" data-testid={testid}>
      <div class="usage-text">
        <strong>{label}</strong> {bytes(used)} used of {bytes(total)} ({percent}%)
      </div>
      <meter aria-label={`${label} used`} min={0} max={total} value={used} high={total * 0.9} />
    </div>
  );
}

/** This host: accelerator and why, capacity and use, versions, and what the host check found. */
export function HostPage() {
  const summary = useResource(() => client.host.summary(), (e) => e.type === 'instance');
  const check = useResource(() => client.host.check({}));
  const s = summary.data;
  const c = check.data;
  const qemu = c?.qemu as { version?: string; path?: string; imgVersion?: string } | undefined;
  return (
    <section>
      <header class="page-header">
        <h1>Host</h1>
        <button type="button" onClick={() => void client.host.check({ refresh: true }).then(() => check.reload())}>
          Check again
        </button>
      </header>
      {summary.error !== undefined && <p class="error" role="alert">{summary.error}</p>}
      {check.error !== undefined && <p class="error" role="alert">{check.error}</p>}
      <div class="cards">
        <div class="card">
          <h2>Accelerator</h2>
          {c === undefined ? (
            <p class="muted">checking…</p>
          ) : (
            <p data-testid="accelerator">
              <strong>{c.accelerator.chosen === 'kvm' ? 'KVM (hardware)' : 'TCG (software emulation)'}</strong>: {c.accelerator.reason}
            </p>
          )}
        </div>
        <div class="card">
          <h2>Capacity</h2>
          {s === undefined ? (
            <p class="muted">loading…</p>
          ) : (
            <>
              <p data-testid="cpus">
                <strong>CPU</strong> {s.cpus} cores, load {s.loadAverage.map((l) => l.toFixed(2)).join(' / ')} (1 / 5 / 15 min)
              </p>
              <Usage label="Memory" used={s.memoryBytes - s.memoryAvailableBytes} total={s.memoryBytes} testid="memory" />
              {s.disk !== undefined && <Usage label={`Disk (${s.stateDir})`} used={s.disk.capacityBytes - s.disk.availableBytes} total={s.disk.capacityBytes} testid="disk" />}
            </>
          )}
        </div>
        <div class="card">
          <h2>Software</h2>
          <table class="facts">
            <tbody>
              <tr>
                <th scope="row">virtnode</th>
                <td data-testid="virtnode-version">{s?.version ?? '…'}</td>
              </tr>
              <tr>
                <th scope="row">QEMU</th>
                <td data-testid="qemu-version">{c === undefined ? '…' : (qemu?.version ?? 'not found')}</td>
              </tr>
              <tr>
                <th scope="row">Kernel</th>
                <td>{s?.kernel ?? '…'}</td>
              </tr>
              <tr>
                <th scope="row">Host name</th>
                <td>{s?.hostname ?? '…'}</td>
              </tr>
              <tr>
                <th scope="row">Up</th>
                <td>{s === undefined ? '…' : duration(s.uptimeSeconds)}</td>
              </tr>
              <tr>
                <th scope="row">Instances</th>
                <td>
                  {s === undefined
                    ? '…'
                    : Object.entries(s.instances)
                        .map(([state, n]) => `${n} ${state}`)
                        .join(', ') || 'none'}
                </td>
              </tr>
            </tbody>
          </table>
        </div>
      </div>
      <h2>Host check {c !== undefined && <span class={`status status-${c.status}`}>{c.status}</span>}</h2>
      {c !== undefined && (
        <table data-testid="host-checks">
          <TableHead columns={['Check', 'Result', 'Detail']} />
          <tbody>
            {c.checks.map((check) => (
              <tr data-check={check.id}>
                <td>{check.title}</td>
                <td>
                  <span class={`status status-${check.status}`}>{check.status}</span>
                </td>
                <td>
                  {check.detail}
                  {check.hint !== undefined && <div class="muted">{check.hint}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
