import { useEffect, useState } from 'preact/hooks';
import { client, type Instance } from '../api.ts';
import { message } from '../lib/format.ts';
import { FormError } from './Field.tsx';

type Policy = NonNullable<Instance['restartPolicy']>;

/**
 * The settings the API lets change (`virtnode set`): autostart and the restart policy. Both are the daemon's, not
 * the guest's, so they apply at once whatever the instance's state. CPUs and memory are shown as fixed: the API
 * has no call to change them.
 */
export function Settings({ instance }: { instance: Instance }) {
  const [autostart, setAutostart] = useState(instance.autostart === true);
  const [policy, setPolicy] = useState<Policy>(instance.restartPolicy ?? 'no');
  const [error, setError] = useState<string | undefined>();
  const [saved, setSaved] = useState<string | undefined>();
  // Changed elsewhere (another tab, the CLI): the form shows the stored values.
  useEffect(() => {
    setAutostart(instance.autostart === true);
    setPolicy(instance.restartPolicy ?? 'no');
  }, [instance.autostart, instance.restartPolicy]);
  const changed = autostart !== (instance.autostart === true) || policy !== (instance.restartPolicy ?? 'no');
  const save = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setSaved(undefined);
    client.instances.setPolicy({ name: instance.name, autostart, restartPolicy: policy }).then(
      () => setSaved('Saved: in effect now.'),
      (err: unknown) => setError(message(err)),
    );
  };
  return (
    <form class="settings" aria-labelledby="settings-title" onSubmit={save}>
      <h2 id="settings-title">Settings</h2>
      <table class="facts">
        <thead>
          <tr>
            <th scope="col">Setting</th>
            <th scope="col">Value</th>
            <th scope="col">Takes effect</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <th scope="row">
              <label for="setting-autostart">Start with the daemon</label>
            </th>
            <td>
              <input id="setting-autostart" type="checkbox" name="autostart" checked={autostart} onChange={(e) => {
                  setSaved(undefined);
                  setAutostart((e.target as HTMLInputElement).checked);
                }} />
            </td>
            <td data-testid="class-autostart">now (used when the host next boots)</td>
          </tr>
          <tr>
            <th scope="row">
              <label for="setting-restart">Restart policy</label>
            </th>
            <td>
              <select id="setting-restart" name="restartPolicy" value={policy} onChange={(e) => {
                  setSaved(undefined);
                  setPolicy((e.target as HTMLSelectElement).value as Policy);
                }}>
                <option value="no">no: leave it stopped</option>
                <option value="on-failure">on-failure: restart after a crash</option>
                <option value="always">always: restart whenever it ends</option>
              </select>
            </td>
            <td data-testid="class-restart">now (live)</td>
          </tr>
          <tr>
            <th scope="row">CPUs</th>
            <td>{instance.cpus}</td>
            <td>fixed when the instance was made</td>
          </tr>
          <tr>
            <th scope="row">Memory</th>
            <td>{instance.memoryMiB} MiB</td>
            <td>fixed when the instance was made</td>
          </tr>
          <tr>
            <th scope="row">Tuning</th>
            <td data-testid="tuning">
              {instance.tuning === undefined
                ? 'QEMU defaults'
                : Object.entries(instance.tuning)
                    .map(([k, v]) => (v === true ? k : `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`))
                    .join(' ')}
            </td>
            <td>each start (checked against the host then)</td>
          </tr>
        </tbody>
      </table>
      <button type="submit" disabled={!changed}>
        Save settings
      </button>
      {saved !== undefined && (
        <p class="ok" role="status">
          {saved}
        </p>
      )}
      <FormError error={error} />
    </form>
  );
}
