import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onUnauthorized, redeemLoginLink, token } from './api.ts';
import { onConnection } from './events.ts';
import { InstanceList } from './pages/InstanceList.tsx';
import { InstancePage, type Tab } from './pages/InstancePage.tsx';
import { Launch } from './pages/Launch.tsx';
import { Login } from './pages/Login.tsx';
import { useLive } from './store.ts';
import './style.css';

type Route = { page: 'list' } | { page: 'launch' } | { page: 'instance'; name: string; tab: Tab };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (parts[0] === 'launch') return { page: 'launch' };
  if (parts[0] === 'instances' && parts[1] !== undefined) return { page: 'instance', name: parts[1], tab: (parts[2] as Tab | undefined) ?? 'overview' };
  return { page: 'list' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}

function Main() {
  const route = useRoute();
  const live = useLive();
  const [error, setError] = useState<string | undefined>();
  const [connected, setConnected] = useState(false);
  useEffect(() => onConnection(setConnected), []);
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          virtnode
        </a>
        <span class={connected ? 'live on' : 'live'} data-testid="live" title="live updates from the daemon">
          {connected ? 'live' : 'offline'}
        </span>
        {token.get() !== null && (
          <button
            type="button"
            class="link"
            onClick={() => {
              token.clear();
              location.reload();
            }}
          >
            Log out
          </button>
        )}
      </header>
      {error !== undefined && (
        <p class="error banner" role="alert" onClick={() => setError(undefined)}>
          {error}
        </p>
      )}
      <main>
        {route.page === 'list' && <InstanceList live={live} onError={setError} />}
        {route.page === 'launch' && <Launch onLaunched={(name) => (location.hash = `#/instances/${encodeURIComponent(name)}`)} />}
        {route.page === 'instance' && <InstancePage live={live} name={route.name} tab={route.tab} onError={setError} />}
      </main>
    </>
  );
}

function App() {
  const [needsLogin, setNeedsLogin] = useState(false);
  // A login link is traded for a token before the page asks the daemon anything.
  const [linking, setLinking] = useState(location.hash.startsWith('#login='));
  const [linkError, setLinkError] = useState<string | undefined>();
  useEffect(() => onUnauthorized(() => setNeedsLogin(true)), []);
  useEffect(() => {
    if (!linking) return;
    void redeemLoginLink().then((error) => {
      if (error !== undefined) {
        setLinkError(error);
        setNeedsLogin(true);
      }
      setLinking(false);
    });
  }, []);
  if (linking) return <p class="muted">Logging in…</p>;
  if (needsLogin) return <Login onLoggedIn={() => setNeedsLogin(false)} {...(linkError === undefined ? {} : { initialError: linkError })} />;
  return <Main />;
}

render(<App />, document.getElementById('app')!);
