import { useState } from 'preact/hooks';
import { api, token } from '../api.ts';

/** Over TCP the daemon wants a bearer token (`virtnode token create NAME` on the host). */
export function Login({ onLoggedIn, initialError }: { onLoggedIn: () => void; initialError?: string }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | undefined>(initialError);
  const submit = async (e: Event) => {
    e.preventDefault();
    token.set(value.trim());
    try {
      await api.instances();
      onLoggedIn();
    } catch (err) {
      token.clear();
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <section class="login">
      <h1>virtnode</h1>
      <form onSubmit={(e) => void submit(e)}>
        <label>
          API token
          <input type="password" name="token" autocomplete="off" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
        </label>
        <p class="muted">
          Make one on the host with <code>virtnode token create NAME</code>, or open the link <code>virtnode ui</code> prints. It is kept in this tab only.
        </p>
        {error !== undefined && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit">Log in</button>
      </form>
    </section>
  );
}
