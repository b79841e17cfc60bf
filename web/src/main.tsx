import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onUnauthorized, token } from './api.ts';
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
  useEffect(() => onUnauthorized(() => setNeedsLogin(true)), []);
  if (needsLogin) return <Login onLoggedIn={() => setNeedsLogin(false)} />;
  return <Main />;
}

render(<App />, document.getElementById('app')!);
