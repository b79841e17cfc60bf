import { useState } from 'preact/hooks';
import { api, type Instance } from '../api.ts';

const CAN: Record<string, (i: Instance) => boolean> = {
  start: (i) => ['defined', 'stopped', 'crashed'].includes(i.state),
  stop: (i) => ['running', 'paused'].includes(i.state),
  restart: (i) => ['running', 'paused'].includes(i.state),
  pause: (i) => i.state === 'running',
  resume: (i) => i.state === 'paused',
  delete: (i) => ['defined', 'stopped', 'crashed', 'running', 'paused'].includes(i.state),
};

/** Lifecycle buttons; each is enabled only in the states where the operation makes sense. */
export function Actions({ instance, onDeleted, onError }: { instance: Instance; onDeleted?: () => void; onError: (message: string) => void }) {
  const [busy, setBusy] = useState(false);
  const run = async (what: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await what();
    } catch (e) {
      onError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const name = instance.name;
  const button = (action: 'start' | 'stop' | 'restart' | 'pause' | 'resume', label: string, body?: { force?: boolean }) => (
    <button type="button" disabled={busy || !CAN[action]!(instance)} onClick={() => void run(() => api.action(name, action, body ?? {}))}>
      {label}
    </button>
  );
  const remove = () => {
    const running = ['running', 'paused'].includes(instance.state);
    const question = running ? `Instance ${name} is ${instance.state}. Kill it and delete it with its disks?` : `Delete instance ${name} and its disks?`;
    if (!window.confirm(question)) return;
    void run(async () => {
      await api.remove(name, running);
      onDeleted?.();
    });
  };
  return (
    <div class="actions" role="group" aria-label={`actions for ${name}`}>
      {button('start', 'Start')}
      {button('stop', 'Stop')}
      {button('stop', 'Force stop', { force: true })}
      {button('restart', 'Restart')}
      {button('pause', 'Pause')}
      {button('resume', 'Resume')}
      <button type="button" class="danger" disabled={busy || !CAN['delete']!(instance)} onClick={remove}>
        Delete
      </button>
    </div>
  );
}
