import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The dependency rules of src/ and web/src, checked over the import graph (static imports, `import type`,
 * re-exports and dynamic `import()` alike). README.md ("Layering") says the same in words.
 *
 * RANKS lists the layers from the bottom up. A file may import files of its own layer and of any layer in an
 * earlier rank; layers in the same rank are peers and may not import each other. `only`, when given, narrows
 * what a layer may import to those layers (besides itself). A file belongs to the layer with the longest
 * matching path (a directory ends in `/`); a file under no layer fails the test, so a new module gets a place.
 */
interface Layer {
  name: string;
  paths: string[];
  only?: string[];
}

const RANKS: Layer[][] = [
  [{ name: 'lib', paths: ['src/lib/'] }],
  [
    { name: 'exec', paths: ['src/exec/'] },
    // Plain data types and their constants, shared by every layer that stores or shows them.
    { name: 'model', paths: ['src/instances/model.ts', 'src/network/model.ts', 'src/templates/model.ts'] },
    // The cloud-config validator: pure, so the browser's editor runs the same checks as `launch`.
    { name: 'cloud-config', paths: ['src/cloudinit/validate.ts', 'src/cloudinit/validate/'] },
  ],
  [{ name: 'api', paths: ['src/api/'], only: ['lib', 'model'] }],
  [
    { name: 'qmp', paths: ['src/qmp/'] },
    { name: 'cloudinit', paths: ['src/cloudinit/'] },
    { name: 'host', paths: ['src/host/'] },
    { name: 'store', paths: ['src/store/'] },
    // A small NFSv3 client for exports QEMU opens itself (nfs://): check, list, remove.
    { name: 'nfs', paths: ['src/nfs/'], only: ['lib'] },
    // libvirt XML in and out, Ansible inventory: pure translations between virtnode's model and other tools'.
    { name: 'interop', paths: ['src/interop/'], only: ['lib', 'exec', 'model', 'api'] },
  ],
  [{ name: 'qemu', paths: ['src/qemu/'] }],
  [
    { name: 'network', paths: ['src/network/'] },
    { name: 'images', paths: ['src/images/'] },
  ],
  [{ name: 'core', paths: ['src/core/'] }],
  [{ name: 'instances', paths: ['src/instances/'] }],
  [{ name: 'storage', paths: ['src/storage/'] }],
  [{ name: 'templates', paths: ['src/templates/'] }],
  [{ name: 'clone', paths: ['src/clone/'] }],
  // Several hosts as one: the shared state (etcd), membership, leases, placement.
  [{ name: 'cluster', paths: ['src/cluster/'] }],
  [{ name: 'app', paths: ['src/app/'] }],
  [
    { name: 'daemon', paths: ['src/daemon/'] },
    { name: 'client', paths: ['src/client/'], only: ['api', 'lib'] },
  ],
  [
    { name: 'cli', paths: ['src/cli/'] },
    { name: 'web', paths: ['web/src/'], only: ['api', 'client', 'cloud-config'] },
  ],
];

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['src', 'web/src'];
const THIS_FILE = relative(ROOT, fileURLToPath(import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((entry) => {
    const path = `${dir}/${entry}`;
    if (statSync(join(ROOT, path)).isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(entry) && !entry.endsWith('.d.ts') ? [path] : [];
  });
}

/** The file a relative specifier names (the web UI's bundler also resolves it without an extension). */
function resolveImport(from: string, specifier: string): string | undefined {
  const base = relative(ROOT, resolve(ROOT, dirname(from), specifier));
  return [base, `${base}.ts`, `${base}.tsx`, `${base}/index.ts`, `${base}/index.tsx`].find((p) => existsSync(join(ROOT, p)) && statSync(join(ROOT, p)).isFile());
}

interface Graph {
  edges: Map<string, string[]>;
  unresolved: string[];
}

function importGraph(): Graph {
  const files = SOURCE_DIRS.flatMap(sourceFiles)
    .filter((f) => f !== THIS_FILE)
    .sort();
  const edges = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
    const targets = new Set<string>();
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue; // a package
      const target = resolveImport(file, fileName);
      if (target === undefined) unresolved.push(`${file}: ${fileName}`);
      else if (/\.tsx?$/.test(target) && SOURCE_DIRS.some((d) => target.startsWith(`${d}/`))) targets.add(target);
    }
    edges.set(file, [...targets].sort());
  }
  return { edges, unresolved };
}

/** Each import cycle as one path through it ("a → b → a"), found per strongly connected component. */
function cycles(edges: Map<string, string[]>): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (edges.get(v) ?? []).includes(v)) components.push(component.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return components.map((component) => {
    // The shortest way from the component's first file back to itself, staying inside the component.
    const members = new Set(component);
    const start = component[0]!;
    const previous = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift()!;
      const next = (edges.get(v) ?? []).filter((w) => members.has(w));
      if (next.includes(start)) {
        const path = [v];
        while (path[0] !== start) path.unshift(previous.get(path[0]!)!);
        return `${[...path, start].join(' → ')} (${component.length} files tied together by import cycles)`;
      }
      for (const w of next) {
        if (w === start || previous.has(w)) continue;
        previous.set(w, v);
        queue.push(w);
      }
    }
    throw new Error(`no cycle found through ${start}`);
  });
}

interface Placed {
  layer: Layer;
  rank: number;
}

const LAYER_OF = new Map<string, Placed>(RANKS.flatMap((layers, rank) => layers.map((layer): [string, Placed] => [layer.name, { layer, rank }])));

function placeOf(file: string): Placed | undefined {
  let best: { placed: Placed; length: number } | undefined;
  for (const placed of LAYER_OF.values()) {
    for (const path of placed.layer.paths) {
      const matches = path.endsWith('/') ? file.startsWith(path) : file === path;
      if (matches && (best === undefined || path.length > best.length)) best = { placed, length: path.length };
    }
  }
  return best?.placed;
}

/** Why `from` may not import `to`, or undefined when it may. */
function breach(from: Placed, to: Placed): string | undefined {
  if (from.layer === to.layer) return undefined;
  if (from.layer.only !== undefined) {
    return from.layer.only.includes(to.layer.name) ? undefined : `${from.layer.name} may import only ${from.layer.only.join(', ')}`;
  }
  if (to.rank < from.rank) return undefined;
  if (to.rank === from.rank) return `${from.layer.name} and ${to.layer.name} are peers: neither imports the other`;
  return `${to.layer.name} is above ${from.layer.name}`;
}

describe('layering', () => {
  const { edges, unresolved } = importGraph();

  it('finds the source files and resolves every relative import', () => {
    expect(edges.size).toBeGreaterThan(100);
    expect(unresolved).toEqual([]);
  });

  it('places every file in a layer', () => {
    expect([...edges.keys()].filter((file) => placeOf(file) === undefined)).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(cycles(edges)).toEqual([]);
  });

  it('has no import from a lower layer into a higher one', () => {
    const breaches: string[] = [];
    for (const [file, targets] of edges) {
      const from = placeOf(file);
      if (from === undefined) continue;
      for (const target of targets) {
        const to = placeOf(target);
        const why = to === undefined ? undefined : breach(from, to);
        if (why === undefined) continue;
        const edge = `${file} → ${target}`;
        breaches.push(`${edge}: ${why}`);
      }
    }
    expect(breaches).toEqual([]);
  });
});

describe('the layering check itself', () => {
  it('reports a cycle as a path through it', () => {
    const edges = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts', 'd.ts']],
      ['d.ts', []],
    ]);
    expect(cycles(edges)).toEqual(['a.ts → b.ts → c.ts → a.ts (3 files tied together by import cycles)']);
  });

  it('tells an upward, a peer and a narrowed import from an allowed one', () => {
    const place = (file: string) => placeOf(file)!;
    expect(breach(place('src/storage/x.ts'), place('src/instances/service.ts'))).toBeUndefined();
    expect(breach(place('src/instances/x.ts'), place('src/storage/service.ts'))).toBe('storage is above instances');
    expect(breach(place('src/daemon/x.ts'), place('src/client/http.ts'))).toBe('daemon and client are peers: neither imports the other');
    expect(breach(place('src/client/x.ts'), place('src/store/db.ts'))).toBe('client may import only api, lib');
    expect(breach(place('src/store/x.ts'), place('src/instances/model.ts'))).toBeUndefined();
    expect(placeOf('src/unplaced/x.ts')).toBeUndefined();
  });
});
