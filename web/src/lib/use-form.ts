import { useState } from 'preact/hooks';
import { checkAll, type Check } from './validate.ts';

/**
 * A form's values and their checks. A field's error shows as soon as it is typed in (or when a send is tried);
 * `submit` runs the work only when every field is valid, so bad input never leaves the page.
 */
export function useForm<K extends string>(initial: Record<K, string>, checks: (values: Record<K, string>) => Partial<Record<K, Check>>) {
  const [values, setValues] = useState(initial);
  const [touched, setTouched] = useState<Partial<Record<K, boolean>>>({});
  const [tried, setTried] = useState(false);
  const errors = checkAll(values, checks(values));
  const shown = (key: K): string | undefined => (tried || touched[key] === true ? errors[key] : undefined);
  const set = (key: K, value: string) => {
    setValues((v) => ({ ...v, [key]: value }));
    setTouched((t) => ({ ...t, [key]: true }));
  };
  const bind = (key: K) => ({
    name: key,
    value: values[key],
    onInput: (e: Event) => set(key, (e.target as HTMLInputElement).value),
  });
  const submit = (work: (values: Record<K, string>) => void) => (e: Event) => {
    e.preventDefault();
    setTried(true);
    if (Object.keys(errors).length === 0) work(values);
  };
  const reset = () => {
    setValues(initial);
    setTouched({});
    setTried(false);
  };
  return { values, errors, shown, set, bind, submit, reset };
}
