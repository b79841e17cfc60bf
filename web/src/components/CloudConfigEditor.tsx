import { useEffect, useMemo, useState } from 'preact/hooks';
import { validateCloudConfig, userDataKind, type ValidationIssue } from '../../../src/cloudinit/validate.ts';

/** Issues of the cloud-config as typed; the same validator as `virtnode cloud-init validate`, run in the page. */
export function checkUserData(text: string): ValidationIssue[] {
  if (text.trim() === '') return [];
  if (userDataKind(text) !== 'cloud-config') return [];
  return validateCloudConfig(text).issues;
}

export function CloudConfigEditor({ value, onInput }: { value: string; onInput: (text: string) => void }) {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(value), 150);
    return () => clearTimeout(timer);
  }, [value]);
  const issues = useMemo(() => checkUserData(debounced), [debounced]);
  const errors = issues.filter((i) => i.severity === 'error').length;
  const kind = debounced.trim() === '' ? 'empty' : userDataKind(debounced);
  return (
    <div class="cloud-config">
      <textarea
        name="userData"
        aria-label="cloud-config"
        aria-invalid={errors > 0}
        spellcheck={false}
        rows={12}
        value={value}
        placeholder={'#cloud-config\npackages: [nginx]'}
        onInput={(e) => onInput((e.target as HTMLTextAreaElement).value)}
      />
      <div class="validation" data-testid="cloud-config-status" aria-live="polite">
        {kind === 'empty' && <span class="muted">no user-data</span>}
        {kind !== 'empty' && kind !== 'cloud-config' && <span class="muted">{kind} user-data: passed to the guest untouched</span>}
        {kind === 'cloud-config' && issues.length === 0 && <span class="ok">valid cloud-config</span>}
        <ul>
          {issues.map((issue) => (
            <li class={issue.severity}>
              {issue.line !== undefined ? `line ${issue.line}:${issue.column ?? 1} ` : ''}
              {issue.path !== '' ? `${issue.path}: ` : ''}
              {issue.message}
              {issue.hint !== undefined ? ` (${issue.hint})` : ''}
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
