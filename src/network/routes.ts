import { run } from '../exec/run.ts';
import { type Cidr, parseCidr } from './ipv4.ts';

export interface HostRoute {
  dst: Cidr;
  text: string;
  dev: string | undefined;
}

/** Parses `ip -json -4 route show` output; the default route is left out (it overlaps everything by design). */
export function parseRoutes(json: string): HostRoute[] {
  const entries = JSON.parse(json === '' ? '[]' : json) as Array<{ dst?: string; dev?: string }>;
  const routes: HostRoute[] = [];
  for (const e of entries) {
    if (e.dst === undefined || e.dst === 'default') continue;
    const text = e.dst.includes('/') ? e.dst : `${e.dst}/32`;
    try {
      routes.push({ dst: parseCidr('route', text), text: e.dst, dev: e.dev });
    } catch {
      continue; // not IPv4 (or a form we do not read): cannot collide with an IPv4 subnet
    }
  }
  return routes;
}

export async function hostRoutes(): Promise<HostRoute[]> {
  const { stdout } = await run(['ip', '-json', '-4', 'route', 'show'], { timeoutMs: 10_000 });
  return parseRoutes(stdout);
}
