import type { Command } from 'commander';
import type { SnapshotApiView } from '../../api/schemas.ts';
import { api } from '../api.ts';
import { table } from '../output.ts';

interface SnapshotNode extends SnapshotApiView {
  children: SnapshotNode[];
}

/** The flat list (oldest first, each naming its parent) as a tree, each snapshot under the one it was taken from. */
function snapshotTree(flat: SnapshotApiView[]): SnapshotNode[] {
  const nodes = new Map(flat.map((s) => [s.name, { ...s, children: [] as SnapshotNode[] }]));
  const roots: SnapshotNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.parent === null ? undefined : nodes.get(node.parent);
    if (parent === undefined) roots.push(node);
    else parent.children.push(node);
  }
  return roots;
}

/** The stable view of a snapshot tree (`snapshot ls --json`). */
function snapshotView(n: SnapshotNode): unknown {
  return {
    name: n.name,
    kind: n.kind,
    memory: n.memory,
    current: n.current,
    state: n.state,
    createdAt: n.createdAt,
    disks: n.disks.map((d) => ({ id: d.id, file: d.file, format: d.format })),
    children: n.children.map(snapshotView),
  };
}

function treeRows(nodes: SnapshotNode[], prefix = '', rows: string[][] = []): string[][] {
  nodes.forEach((n, i) => {
    const last = i === nodes.length - 1;
    const branch = prefix === '' && nodes.length === 1 && rows.length === 0 ? '' : last ? '└─ ' : '├─ ';
    rows.push([
      `${prefix}${branch}${n.name}`,
      n.kind,
      n.memory ? 'yes' : 'no',
      n.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      `${n.current ? 'current' : ''}${n.state === 'ready' ? '' : ` (${n.state})`}`.trim(),
    ]);
    treeRows(n.children, `${prefix}${branch === '' ? '' : last ? '   ' : '│  '}`, rows);
  });
  return rows;
}

function printNotes(notes: string[]): void {
  for (const note of notes) process.stdout.write(`  ${note}\n`);
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program.command('snapshot').description('snapshots of an instance: internal (qcow2, with memory when running) or external (overlays)');

  snapshot
    .command('create')
    .description('snapshot an instance: running → with memory state (internal); stopped → disks (internal)')
    .argument('<instance>')
    .argument('[snapshot]', 'snapshot name (default: snap-DATE-TIME)')
    .option('--disk-only', 'running instance: an external snapshot of the disks (qcow2 overlays), no memory state')
    .option('--external', 'stopped instance: an external snapshot (qcow2 overlays) instead of an internal one')
    .option('--quiesce', 'freeze the guest\'s filesystems through its guest agent during a --disk-only snapshot')
    .action(async (instance: string, name: string | undefined, o: { diskOnly?: boolean; external?: boolean; quiesce?: boolean }) => {
      const r = await (await api()).snapshots.create({ instance, ...(name === undefined ? {} : { name }), diskOnly: o.diskOnly === true, external: o.external === true, quiesce: o.quiesce === true });
      const s = r.snapshot;
      process.stdout.write(`Created ${s.kind} snapshot ${s.name} of ${instance}${s.memory ? ' with memory state' : ' (disks only)'}\n`);
      printNotes(r.notes);
    });

  snapshot
    .command('ls')
    .description('an instance\'s snapshots as a tree')
    .argument('<instance>')
    .option('--json', 'as JSON')
    .action(async (instance: string, o: { json?: boolean }) => {
      const tree = snapshotTree(await (await api()).snapshots.list({ instance }));
      if (o.json) {
        process.stdout.write(`${JSON.stringify(tree.map(snapshotView), null, 2)}\n`);
        return;
      }
      if (tree.length === 0) {
        process.stdout.write(`Instance ${instance} has no snapshots\n`);
        return;
      }
      process.stdout.write(table(['NAME', 'KIND', 'MEMORY', 'CREATED', 'CURRENT'], treeRows(tree)));
    });

  snapshot
    .command('revert')
    .description('return to a snapshot, discarding everything since (may restart a running instance; it says so)')
    .argument('<instance>')
    .argument('<snapshot>')
    .action(async (instance: string, name: string) => {
      const r = await (await api()).snapshots.revert({ instance, snap: name });
      process.stdout.write(`Reverted ${instance} to snapshot ${name}\n`);
      printNotes(r.notes);
    });

  snapshot
    .command('rm')
    .description('delete a snapshot (an external one is merged into the file above it)')
    .argument('<instance>')
    .argument('<snapshot>')
    .action(async (instance: string, name: string) => {
      const r = await (await api()).snapshots.delete({ instance, snap: name });
      process.stdout.write(`Deleted snapshot ${name} of ${instance}\n`);
      printNotes(r.notes);
    });
}
