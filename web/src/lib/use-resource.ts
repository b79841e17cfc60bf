import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { subscribe, type DaemonEvent } from '../events.ts';
import { message } from './format.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => Promise<void>;
}

/**
 * Data a page shows, loaded once and again whenever the events stream says something it depends on changed
 * (`refreshOn`): no polling. A failed load keeps the last data and says why.
 */
export function useResource<T>(load: () => Promise<T>, refreshOn: (event: DaemonEvent) => boolean = () => false, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<string | undefined>();
  const alive = useRef(true);
  const reload = useCallback(
    () =>
      load().then(
        (value) => {
          if (!alive.current) return;
          setData(value);
          setError(undefined);
        },
        (e: unknown) => {
          if (alive.current) setError(message(e));
        },
      ),
    deps,
  );
  useEffect(() => {
    alive.current = true;
    void reload();
    const unsubscribe = subscribe((event) => {
      if (event.type === 'hello' || refreshOn(event)) void reload();
    });
    return () => {
      alive.current = false;
      unsubscribe();
    };
  }, deps);
  return { data, error, reload };
}

/** An operation of one of these kinds ended (its result may have changed a list). */
export function operationEnded(...kinds: string[]): (event: DaemonEvent) => boolean {
  return (event) => event.type === 'operation' && event.operation.status !== 'running' && (kinds.length === 0 || kinds.some((k) => event.operation.kind.startsWith(k)));
}
