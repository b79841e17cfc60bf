/**
 * The orphan check of the fault tests: what a state directory holds (files, database rows, processes) against what
 * its database says should exist. Read straight from the database and /proc, never through virtnode, so a bug in
 * virtnode's own views cannot hide one in its state.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

interface DiskRow {
  id: string;
  path: string;
  format: string;
}

interface InstanceRow {
  name: string;
  state: string;
  pid: number | null;
  spec: { disks: DiskRow[]; httpSeedDir?: string };
}

interface SnapshotRow {
  instance: string;
  name: string;
  state: string;
  kind: string;
  disks: Array<{ id: string; file: string; overlay?: string }>;
}

export interface StateRows {
  instances: InstanceRow[];
  volumes: Array<{ name: string; path: string; format: string; state: string }>;
  snapshots: SnapshotRow[];
  templates: Array<{ name: string; disk_path: string }>;
}

const LIVE = new Set(['running', 'paused']);
const SETTLED = new Set(['defined', 'stopped', 'crashed', 'running', 'paused']);
/** Files an instance directory holds whatever its disks. */
const INSTANCE_FILES = new Set(['console.log', 'console.log.1', 'qemu.log', 'ssh', 'overlays']);
/** Files only a running QEMU has. */
const RUNTIME_FILES = new Set(['qmp.sock', 'qmp-query.sock', 'serial.sock', 'qga.sock', 'vnc.sock', 'qemu.pid']);
const TOP_LEVEL = new Set(['virtnode.db', 'virtnode.db-wal', 'virtnode.db-shm', 'instances', 'pools', 'bases', 'templates', 'images', 'ssh', 'cache', 'scratch']);

export function readRows(home: string): StateRows {
  const db = new DatabaseSync(join(home, 'virtnode.db'), { readOnly: true, timeout: 10_000 });
  try {
    const all = <T>(sql: string) => db.prepare(sql).all() as T[];
    return {
      instances: all<{ name: string; state: string; pid: number | null; spec: string }>('SELECT name, state, pid, spec FROM instances').map((r) => ({
        ...r,
        spec: JSON.parse(r.spec) as InstanceRow['spec'],
      })),
      volumes: all('SELECT name, path, format, state FROM volumes'),
      snapshots: all<{ instance: string; name: string; state: string; kind: string; disks: string }>('SELECT instance, name, state, kind, disks FROM snapshots').map((r) => ({
        ...r,
        disks: JSON.parse(r.disks) as SnapshotRow['disks'],
      })),
      templates: all('SELECT name, disk_path FROM templates'),
    };
  } finally {
    db.close();
  }
}

/** The image and every file under it (`qemu-img info --backing-chain`), read without taking QEMU's lock. */
export function chainOf(path: string): string[] {
  const out = execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', path], { encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ filename: string }>).map((l) => l.filename);
}

/** Processes (other than this one) whose command line names a path in the state directory. */
export function processesUnder(home: string): Array<{ pid: number; argv: string[] }> {
  const found: Array<{ pid: number; argv: string[] }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes(`${home}/`))) found.push({ pid: Number(entry), argv });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return out;
}

/**
 * Everything wrong with the state directory, one line each (empty: nothing orphaned, nothing half made, every
 * image consistent): records left in a transitional state, processes the database does not own, files no record
 * refers to, and `qemu-img check` on every image no running QEMU has open.
 */
export function auditState(home: string): string[] {
  const problems: string[] = [];
  const rows = readRows(home);

  for (const i of rows.instances) {
    if (!SETTLED.has(i.state)) problems.push(`instance ${i.name} is left ${i.state}`);
    if (LIVE.has(i.state) !== (i.pid !== null)) problems.push(`instance ${i.name} is ${i.state} with pid ${i.pid}`);
  }
  for (const s of rows.snapshots) if (s.state !== 'ready') problems.push(`snapshot ${s.instance}/${s.name} is left ${s.state}`);
  for (const v of rows.volumes) if (v.state !== 'ready') problems.push(`volume ${v.name} is left ${v.state}`);

  // Processes: only the QEMUs of live instances.
  const owned = new Set(rows.instances.filter((i) => LIVE.has(i.state)).map((i) => i.pid));
  for (const p of processesUnder(home)) {
    if (!owned.has(p.pid)) problems.push(`process ${p.pid} not owned by any record: ${p.argv.join(' ').slice(0, 200)}`);
  }
  for (const i of rows.instances.filter((x) => LIVE.has(x.state))) {
    if (!existsSync(`/proc/${i.pid}`)) problems.push(`instance ${i.name} is ${i.state} but its QEMU ${i.pid} is gone`);
  }

  // Files every record needs, with everything beneath them.
  const live = new Set(rows.instances.filter((i) => LIVE.has(i.state)).map((i) => i.name));
  const tops = [
    ...rows.instances.flatMap((i) => i.spec.disks.map((d) => d.path)),
    ...rows.snapshots.flatMap((s) => s.disks.map((d) => d.file)),
    ...rows.templates.map((t) => t.disk_path),
    ...rows.volumes.map((v) => v.path),
  ];
  const needed = new Set<string>();
  for (const top of tops) {
    if (!existsSync(top)) {
      problems.push(`${top} is recorded but missing`);
      continue;
    }
    for (const f of chainOf(top)) needed.add(f);
  }

  for (const entry of readdirSync(home)) if (!TOP_LEVEL.has(entry)) problems.push(`unexpected ${join(home, entry)}`);
  const scratch = join(home, 'scratch');
  if (existsSync(scratch)) for (const f of readdirSync(scratch)) problems.push(`scratch record left: ${join(scratch, f)}`);
  const instancesDir = join(home, 'instances');
  for (const name of existsSync(instancesDir) ? readdirSync(instancesDir) : []) {
    const instance = rows.instances.find((i) => i.name === name);
    if (instance === undefined) {
      problems.push(`instance directory ${name} has no record`);
      continue;
    }
    const dir = join(instancesDir, name);
    for (const file of walk(dir)) {
      const rel = file.slice(dir.length + 1);
      const first = rel.split('/')[0]!;
      if (needed.has(file)) continue;
      if (first === 'ssh' || (first === 'seed' && instance.spec.httpSeedDir !== undefined)) continue;
      if (INSTANCE_FILES.has(rel)) continue;
      if (RUNTIME_FILES.has(rel) && live.has(name)) continue;
      problems.push(`stray file ${file}`);
    }
  }
  for (const sub of ['pools', 'bases', 'templates']) {
    const dir = join(home, sub);
    for (const file of existsSync(dir) ? walk(dir) : []) if (!needed.has(file)) problems.push(`stray file ${file}`);
  }

  // Every image no live QEMU holds passes qemu-img check (each layer on its own).
  const inUse = new Set<string>();
  for (const i of rows.instances.filter((x) => LIVE.has(x.state))) for (const d of i.spec.disks) for (const f of chainOf(d.path)) inUse.add(f);
  for (const file of needed) {
    if (inUse.has(file)) continue;
    const format = (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' })) as { format: string }).format;
    if (format !== 'qcow2') continue;
    try {
      execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      problems.push(`qemu-img check ${file} failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
    }
  }
  return problems;
}
