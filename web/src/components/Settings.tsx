import { useEffect, useState } from 'preact/hooks';
import { client, type Instance } from '../api.ts';
import { message } from '../lib/format.ts';
import { FormError } from './Field.tsx';
import { TableHead } from './TableHead.tsx';

type Policy = NonNullable<Instance['restartPolicy']>;

/**
 * The settings the API lets change (`virtnode set`): vCPUs and memory (vCPUs at the next boot; less memory at once
 * through the balloon when the guest runs, more at the next boot), autostart and the restart policy (the daemon's,
 * so at once whatever the instance's state).
 */
export function Settings({ instance }: { instance: Instance }) {
  const [autostart, setAutostart] = useState(instance.autostart === true);
  const [policy, setPolicy] = useState<Policy>(instance.restartPolicy ?? 'no');
  const [cpus, setCpus] = useState(String(instance.cpus));
  const [memory, setMemory] = useState(`${instance.memoryMiB}M`);
  const [error, setError] = useState<string | undefined>();
  const [saved, setSaved] = useState<string | undefined>();
  // Changed elsewhere (another tab, the CLI): the form shows the stored values.
  useEffect(() => {
    setAutostart(instance.autostart === true);
    setPolicy(instance.restartPolicy ?? 'no');
  }, [instance.autostart, instance.restartPolicy]);
  useEffect(() => {
    setCpus(String(instance.cpus));
    setMemory(`${instance.memoryMiB}M`);
  }, [instance.cpus, instance.memoryMiB]);
  const memoryMiB = parseMemoryMiB(memory);
  const cpusError = /^\d+$/.test(cpus.trim()) && Number(cpus) >= 1 && Number(cpus) <= 1024 ? undefined : 'a whole number of vCPUs, at least 1';
  const memoryError = memoryMiB === undefined ? 'a size such as 512M or 2G (at least 16M)' : undefined;
  const resourcesChanged = Number(cpus) !== instance.cpus || memoryMiB !== instance.memoryMiB;
  const policyChanged = autostart !== (instance.autostart === true) || policy !== (instance.restartPolicy ?? 'no');
  const running = instance.state === 'running' || instance.state === 'paused';
  const memoryWhen = memoryMiB !== undefined && running && memoryMiB < instance.memoryMiB ? 'now (balloon), and from the next boot' : 'at the next boot';
  const save = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setSaved(undefined);
    if (cpusError !== undefined || memoryError !== undefined) return; // nothing is sent while a field is wrong
    try {
      const said: string[] = [];
      if (resourcesChanged) {
        const r = await client.instances.resources({ name: instance.name, ...(Number(cpus) !== instance.cpus ? { cpus: Number(cpus) } : {}), ...(memoryMiB !== instance.memoryMiB ? { memory } : {}) });
        if (r.effect.cpus !== undefined) said.push('vCPUs from the next boot');
        if (r.effect.memory !== undefined) said.push(r.effect.memory === 'live' ? 'memory now' : 'memory from the next boot');
      }
      if (policyChanged) {
        await client.instances.setPolicy({ name: instance.name, autostart, restartPolicy: policy });
        said.push('autostart and restart policy now');
      }
      setSaved(`Saved: ${said.join(', ')}.`);
    } catch (err) {
      setError(message(err));
    }
  };
  return (
    <form class="settings" aria-labelledby="settings-title" onSubmit={(e) => void save(e)}>
      <h2 id="settings-title">Settings</h2>
      <table class="facts">
        <TableHead columns={['Setting', 'Value', 'Takes effect']} />
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
            <th scope="row">
              <label for="setting-cpus">vCPUs</label>
            </th>
            <td>
              <input id="setting-cpus" name="cpus" inputMode="numeric" value={cpus} aria-invalid={cpusError === undefined ? 'false' : 'true'} aria-describedby={cpusError === undefined ? undefined : 'setting-cpus-error'} onInput={(e) => {
                  setSaved(undefined);
                  setCpus((e.target as HTMLInputElement).value);
                }} />
              {cpusError !== undefined && <small id="setting-cpus-error" class="field-error" data-testid="setting-cpus-error">{cpusError}</small>}
            </td>
            <td data-testid="class-cpus">at the next boot</td>
          </tr>
          <tr>
            <th scope="row">
              <label for="setting-memory">Memory</label>
            </th>
            <td>
              <input id="setting-memory" name="memory" value={memory} aria-invalid={memoryError === undefined ? 'false' : 'true'} aria-describedby={memoryError === undefined ? undefined : 'setting-memory-error'} onInput={(e) => {
                  setSaved(undefined);
                  setMemory((e.target as HTMLInputElement).value);
                }} />
              {memoryError !== undefined && <small id="setting-memory-error" class="field-error" data-testid="setting-memory-error">{memoryError}</small>}
            </td>
            <td data-testid="class-memory">{memoryWhen}</td>
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
      <button type="submit" disabled={!(resourcesChanged || policyChanged) || cpusError !== undefined || memoryError !== undefined}>
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

/** 512M, 2G, 1024 (MiB), as the API reads memory; undefined when it is not a size of at least 16 MiB. */
function parseMemoryMiB(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$/i.exec(text);
  if (m === null) return undefined;
  const factor = { '': 1, K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const mib = Math.floor(Number(m[1]) * factor);
  return mib >= 16 ? mib : undefined;
}
