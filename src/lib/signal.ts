/** `options` plus `signal` when there is one (exactOptionalPropertyTypes forbids `signal: undefined`). */
export function withSignal<T extends object>(options: T, signal: AbortSignal | undefined): T & { signal?: AbortSignal } {
  return signal === undefined ? options : { ...options, signal };
}
