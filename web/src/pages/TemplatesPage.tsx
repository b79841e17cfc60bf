import { useState } from 'preact/hooks';
import { API, client, start, type Operation, type Template } from '../api.ts';
import { Field, FormError } from '../components/Field.tsx';
import { Listing } from '../components/Listing.tsx';
import { OperationProgress } from '../components/OperationProgress.tsx';
import { bytes, message, when } from '../lib/format.ts';
import { useForm } from '../lib/use-form.ts';
import { operationEnded, useResource } from '../lib/use-resource.ts';
import * as v from '../lib/validate.ts';
import type { Live } from '../store.ts';

function MakeTemplate({ instances, onStarted }: { instances: string[]; onStarted: (op: Operation) => void }) {
  const form = useForm({ instance: '', name: '' }, () => ({ instance: v.required('an instance'), name: v.optional(v.name) }));
  const [error, setError] = useState<string | undefined>();
  const send = form.submit((values) => {
    setError(undefined);
    start(API.templates.create, { instance: values.instance, ...(values.name === '' ? {} : { name: values.name }) }).then(
      (op) => {
        form.reset();
        onStarted(op);
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="inline-form" aria-labelledby="make-template-title" onSubmit={send} noValidate>
      <h2 id="make-template-title">Make a template from an instance</h2>
      <p class="muted form-note">
        The instance is stopped, its disk sealed (machine-id, SSH host keys, cloud-init state cleared) and kept read-only; the instance itself is removed.
      </p>
      <Field id="template-instance" label="Instance" error={form.shown('instance')}>
        {(p) => (
          <select {...p} {...form.bind('instance')} onChange={(e) => form.set('instance', (e.target as HTMLSelectElement).value)}>
            <option value="">choose…</option>
            {instances.map((i) => (
              <option value={i}>{i}</option>
            ))}
          </select>
        )}
      </Field>
      <Field id="template-name" label="Template name" error={form.shown('name')} hint="default: the instance's name">
        {(p) => <input {...p} {...form.bind('name')} />}
      </Field>
      <button type="submit">Make template</button>
      <FormError error={error} />
    </form>
  );
}

/** A new instance from a template: a full copy or a linked clone (a qcow2 overlay on the template). */
function CloneForm({ template, onStarted }: { template: Template; onStarted: (op: Operation) => void }) {
  const form = useForm({ name: '', mode: 'linked' }, () => ({ name: v.name }));
  const [error, setError] = useState<string | undefined>();
  const id = `clone-${template.name}`;
  const send = form.submit((values) => {
    setError(undefined);
    start(API.templates.clone, { source: template.name, name: values.name, linked: values.mode === 'linked' }).then(
      (op) => {
        form.reset();
        onStarted(op);
      },
      (e: unknown) => setError(message(e)),
    );
  });
  return (
    <form class="row-form" onSubmit={send} noValidate>
      <Field id={`${id}-name`} label={`New instance from ${template.name}`} error={form.shown('name')}>
        {(p) => <input {...p} {...form.bind('name')} size={14} />}
      </Field>
      <Field id={`${id}-mode`} label="Copy">
        {(p) => (
          <select {...p} {...form.bind('mode')} onChange={(e) => form.set('mode', (e.target as HTMLSelectElement).value)}>
            <option value="linked">linked (instant, shares the template's disk)</option>
            <option value="full">full copy</option>
          </select>
        )}
      </Field>
      <button type="submit">Create instance</button>
      <FormError error={error} />
    </form>
  );
}

/** Templates: make one from an instance, new instances (clones) from one, remove. */
export function TemplatesPage({ live }: { live: Live }) {
  const templates = useResource(() => client.templates.list(), operationEnded('template', 'clone'));
  const [started, setStarted] = useState<Operation[]>([]);
  const [error, setError] = useState<string | undefined>();
  const onStarted = (op: Operation) => setStarted((list) => [op, ...list]);
  const stoppedInstances = [...live.instances.values()].filter((i) => ['stopped', 'defined', 'crashed'].includes(i.state)).map((i) => i.name).sort();
  const remove = (name: string) => {
    if (!window.confirm(`Remove template ${name}?`)) return;
    setError(undefined);
    client.templates.delete({ name }).then(() => void templates.reload(), (e: unknown) => setError(message(e)));
  };
  return (
    <section>
      <header class="page-header">
        <h1>Templates</h1>
      </header>
      <FormError error={error ?? templates.error} />
      <Listing items={templates.data} empty="No templates yet.">
        {(items) =>
          items.map((t) => (
            <section class="card" data-template={t.name} aria-labelledby={`template-${t.name}-title`}>
              <header class="page-header">
                <h2 id={`template-${t.name}-title`}>Template {t.name}</h2>
                <button type="button" class="danger" aria-label={`Remove template ${t.name}`} onClick={() => remove(t.name)}>
                  Remove
                </button>
              </header>
              <table class="facts">
                <tbody>
                  <tr>
                    <th scope="row">Made from</th>
                    <td>{t.source}</td>
                  </tr>
                  <tr>
                    <th scope="row">Disk</th>
                    <td>
                      {t.format}, {bytes(t.virtualSize)}
                    </td>
                  </tr>
                  <tr>
                    <th scope="row">Defaults</th>
                    <td>
                      {t.defaults.cpus} CPU, {t.defaults.memoryMiB} MiB, networks: {t.defaults.networks.join(', ') || 'user'}
                    </td>
                  </tr>
                  <tr>
                    <th scope="row">Sealed</th>
                    <td>{t.sealMethod}</td>
                  </tr>
                  <tr>
                    <th scope="row">Instances on it</th>
                    <td data-testid="template-clones">
                      {t.clones.length === 0
                        ? 'none'
                        : t.clones.map((c, n) => (
                            <>
                              {n > 0 && ', '}
                              <a href={`#/instances/${encodeURIComponent(c)}`}>{c}</a>
                            </>
                          ))}
                    </td>
                  </tr>
                  <tr>
                    <th scope="row">Made</th>
                    <td>{when(t.createdAt)}</td>
                  </tr>
                </tbody>
              </table>
              <CloneForm template={t} onStarted={onStarted} />
            </section>
          ))
        }
      </Listing>
      {started.length > 0 && (
        <div aria-live="polite">
          <h2>Progress</h2>
          {started.map((op) => {
            const current = live.operations.get(op.id) ?? op;
            return <OperationProgress op={current} label={`${current.kind} ${current.target ?? ''}`.trim()} />;
          })}
        </div>
      )}
      <MakeTemplate instances={stoppedInstances} onStarted={onStarted} />
    </section>
  );
}
