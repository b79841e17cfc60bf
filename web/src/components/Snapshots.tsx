import { useEffect, useState } from 'preact/hooks';
import { api, type Instance, type Snapshot, type SnapshotInput } from '../api.ts';
import { Listing } from './Listing.tsx';
import { TableHead } from './TableHead.tsx';

function describe(s: Snapshot): string {
  if (s.kind === 'external') return 'external (overlays)';
  return s.memory ? 'internal, with memory' : 'internal, disks';
}

/**
 * An instance's snapshots: take one (running → with memory, or disks only; stopped → internal or external),
 * revert to one, delete one. The daemon decides what is possible and says why when it refuses.
 */
export function Snapshots({ instance, onError }: { instance: Instance; onError: (message: string) => void }) {
  const name = instance.name;
  const [snapshots, setSnapshots] = useState<Snapshot[] | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [notes, setNotes] = useState<string[]>([]);
  const [newName, setNewName] = useState('');
  const [variant, setVariant] = useState<'default' | 'diskOnly' | 'external'>('default');
  const running = ['running', 'paused'].includes(instance.state);

  const refresh = () => api.snapshots(name).then(setSnapshots, (e: Error) => onError(e.message));
  useEffect(() => void refresh(), [name]);

  const run = async (what: string, work: () => Promise<{ notes: string[] }>) => {
    setBusy(what);
    setNotes([]);
    try {
      setNotes((await work()).notes.slice());
    } catch (e) {
      onError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(undefined);
      await refresh();
    }
  };

  const create = (event: Event) => {
    event.preventDefault();
    const body: SnapshotInput = { instance: name };
    if (newName.trim() !== '') body.name = newName.trim();
    if (variant === 'diskOnly' && running) body.diskOnly = true;
    if (variant === 'external' && !running) body.external = true;
    void run('create', () => api.createSnapshot(body)).then(() => setNewName(''));
  };
  const revert = (snap: string) => {
    const question = running ? `Revert ${name} to ${snap}? Everything since is lost, and the instance may restart.` : `Revert ${name} to ${snap}? Everything since is lost.`;
    if (window.confirm(question)) void run(`revert ${snap}`, () => api.revertSnapshot(name, snap));
  };
  const remove = (snap: string) => {
    if (window.confirm(`Delete snapshot ${snap} of ${name}?`)) void run(`delete ${snap}`, () => api.deleteSnapshot(name, snap));
  };

  return (
    <div class="snapshots">
      <form class="snapshot-form" onSubmit={create} aria-label="take a snapshot">
        <label>
          Name <input name="snapshot-name" value={newName} placeholder="(automatic)" onInput={(e) => setNewName((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Kind{' '}
          <select name="snapshot-kind" value={variant} onChange={(e) => setVariant((e.target as HTMLSelectElement).value as typeof variant)}>
            <option value="default">{running ? 'with memory (internal)' : 'disks (internal)'}</option>
            {running ? <option value="diskOnly">disks only (external, guest keeps running)</option> : <option value="external">disks (external overlays)</option>}
          </select>
        </label>
        <button type="submit" disabled={busy !== undefined}>
          Take snapshot
        </button>
        {busy !== undefined && <span class="muted" data-testid="snapshot-busy">{busy}…</span>}
      </form>
      {notes.map((n) => (
        <p class="muted">{n}</p>
      ))}
      <Listing items={snapshots} empty="No snapshots.">
        {(items) => (
          <table data-testid="snapshot-table">
            <TableHead columns={['Name', 'Kind', 'Parent', 'Taken']} actions />
            <tbody>
              {items.map((s) => (
                <tr data-snapshot={s.name}>
                  <td>
                    {s.name}
                    {s.current ? ' (current)' : ''}
                    {s.state === 'ready' ? '' : ` — ${s.state}`}
                  </td>
                  <td>{describe(s)}</td>
                  <td>{s.parent ?? '-'}</td>
                  <td>{s.createdAt}</td>
                  <td class="actions">
                    <button type="button" disabled={busy !== undefined || s.state !== 'ready'} onClick={() => revert(s.name)}>
                      Revert
                    </button>
                    <button type="button" class="danger" disabled={busy !== undefined || s.state !== 'ready'} onClick={() => remove(s.name)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listing>
    </div>
  );
}
