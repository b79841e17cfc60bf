import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onUnauthorized, redeemLoginLink, token } from './api.ts';
import { onConnection } from './events.ts';
import { InstanceList } from './pages/InstanceList.tsx';
import { InstancePage, type Tab } from './pages/InstancePage.tsx';
import { Launch } from './pages/Launch.tsx';
import { Login } from './pages/Login.tsx';
import { ClusterPage } from './pages/ClusterPage.tsx';
import { HostPage } from './pages/HostPage.tsx';
import { ImagesPage } from './pages/ImagesPage.tsx';
import { NetworksPage } from './pages/NetworksPage.tsx';
import { OperationsPage } from './pages/OperationsPage.tsx';
import { StoragePage } from './pages/StoragePage.tsx';
import { TemplatesPage } from './pages/TemplatesPage.tsx';
import { useLive } from './store.ts';
import './style.css';

type Route =
  | { page: 'list' }
  | { page: 'launch' }
  | { page: 'instance'; name: string; tab: Tab }
  | { page: 'host' }
  | { page: 'cluster' }
  | { page: 'images' }
  | { page: 'networks'; name: string | undefined }
  | { page: 'storage' }
  | { page: 'templates' }
  | { page: 'operations' };

/** The console's sections, in the order of the navigation bar. */
const SECTIONS = [
  { href: '#/', label: 'Instances', pages: ['list', 'launch', 'instance'] },
  { href: '#/host', label: 'Host', pages: ['host'] },
  { href: '#/cluster', label: 'Cluster', pages: ['cluster'] },
  { href: '#/images', label: 'Images', pages: ['images'] },
  { href: '#/networks', label: 'Networks', pages: ['networks'] },
  { href: '#/storage', label: 'Storage', pages: ['storage'] },
  { href: '#/templates', label: 'Templates', pages: ['templates'] },
  { href: '#/operations', label: 'Operations', pages: ['operations'] },
] as const;

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (parts[0] === 'launch') return { page: 'launch' };
  if (parts[0] === 'host' || parts[0] === 'cluster' || parts[0] === 'images' || parts[0] === 'storage' || parts[0] === 'templates' || parts[0] === 'operations') return { page: parts[0] };
  if (parts[0] === 'networks') return { page: 'networks', name: parts[1] };
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
  // The document title names the section (screen readers announce it; browser history shows it).
  const section = SECTIONS.find((s) => (s.pages as readonly string[]).includes(route.page));
  useEffect(() => {
    document.title = `${route.page === 'instance' ? route.name : (section?.label ?? '')} · virtnode`;
  }, [route.page, route.page === 'instance' ? route.name : '']);
  return (
    <>
      <header class="top">
        <a class="skip" href="#main" onClick={(e) => {
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}>
          Skip to content
        </a>
        <a class="brand" href="#/">
          virtnode
        </a>
        <nav aria-label="Sections">
          <ul>
            {SECTIONS.map((s) => (
              <li>
                <a href={s.href} aria-current={s === section ? 'page' : undefined}>
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
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
      <main id="main" tabIndex={-1}>
        {route.page === 'list' && <InstanceList live={live} onError={setError} />}
        {route.page === 'launch' && <Launch onLaunched={(name) => (location.hash = `#/instances/${encodeURIComponent(name)}`)} />}
        {route.page === 'instance' && <InstancePage live={live} name={route.name} tab={route.tab} onError={setError} />}
        {route.page === 'host' && <HostPage />}
        {route.page === 'cluster' && <ClusterPage live={live} />}
        {route.page === 'images' && <ImagesPage live={live} />}
        {route.page === 'networks' && <NetworksPage selected={route.name} />}
        {route.page === 'storage' && <StoragePage live={live} />}
        {route.page === 'templates' && <TemplatesPage live={live} />}
        {route.page === 'operations' && <OperationsPage live={live} />}
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
