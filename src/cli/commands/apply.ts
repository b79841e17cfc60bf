import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import type { PlanView } from '../../api/stack.ts';
import { invalid } from '../../lib/errors.ts';
import { api } from '../api.ts';
import { interruptibly } from '../interrupt.ts';
import { parseFormat, structured } from '../output.ts';

interface StackOptions {
  file: string[];
  stack?: string;
  format?: string;
}

/** `-f FILE|DIR` (repeatable): a directory stands for its *.yaml and *.yml files, in name order. */
function readStack(o: StackOptions): { files: Array<{ path: string; text: string }>; stack: string } {
  const files: Array<{ path: string; text: string }> = [];
  for (const given of o.file) {
    let isDir: boolean;
    try {
      isDir = statSync(given).isDirectory();
    } catch {
      throw invalid('-f', `${given} does not exist`, 'name a stack file (YAML) or a directory of them');
    }
    const paths = isDir
      ? readdirSync(given)
          .filter((n) => ['.yaml', '.yml'].includes(extname(n)))
          .sort()
          .map((n) => join(given, n))
      : [given];
    if (paths.length === 0) throw invalid('-f', `${given} holds no .yaml or .yml file`);
    for (const path of paths) files.push({ path, text: readFileSync(path, 'utf8') });
  }
  const first = o.file[0]!;
  const stack = o.stack ?? stackName(first);
  return { files, stack };
}

/** The default stack name: the file's or directory's name, as a DNS label. */
function stackName(path: string): string {
  const base = basename(path.replace(/\/+$/, ''), extname(path))
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  if (base === '') throw invalid('--stack', `no stack name can be made of ${path}`, 'give one: --stack NAME');
  return base;
}

const SYMBOL: Record<string, string> = { create: '+', update: '~', replace: '-/+', delete: '-', none: ' ' };

/** The plan as a person reads it: each object that changes, then each field with its class. */
export function renderPlan(plan: PlanView, options: { live?: boolean } = {}): string {
  const lines: string[] = [];
  const count = (a: string) => plan.objects.filter((o) => o.action === a).length;
  for (const o of plan.objects) {
    if (o.action === 'none' && o.changes.length === 0) continue;
    const outcome = o.outcome === undefined || o.outcome === 'done' ? '' : ` [${o.outcome}${o.error === undefined ? '' : `: ${o.error}`}]`;
    lines.push(`${SYMBOL[o.action]} ${o.kind} ${o.name}${o.action === 'none' ? '' : ` (${o.action})`}${outcome}`);
    for (const c of o.changes) {
      const value = c.from !== undefined && c.to !== undefined ? `${c.from} → ${c.to}` : c.to !== undefined ? (o.action === 'create' ? c.to : `+ ${c.to}`) : c.from !== undefined ? `- ${c.from}` : '';
      const cls = o.action === 'create' || c.class === 'none' ? '' : ` [${c.class}]`;
      if (c.field === '') lines.push(`    ${c.note ?? ''}`);
      else lines.push(`    ${c.field}${value === '' ? '' : `: ${value}`}${cls}${c.note === undefined ? '' : `  ${c.note}`}`);
    }
    if (o.blocked !== undefined) lines.push(`    ! ${o.blocked}`);
  }
  for (const d of plan.drift ?? []) lines.push(`! drift: ${d.kind} ${d.name}: ${d.field}: recorded ${d.recorded}, live ${d.live}`);
  if (!plan.changed && (plan.drift ?? []).length === 0) {
    lines.push(options.live === true ? `No drift: the live state matches the stack files (stack ${plan.stack}).` : `No changes: the host matches the stack files (stack ${plan.stack}).`);
  } else if (plan.changed) {
    const parts = (['create', 'update', 'replace', 'delete'] as const).map((a) => `${count(a)} to ${a}`);
    lines.push(`${plan.applied ? 'Applied' : 'Plan'}: ${parts.join(', ')}.`);
  }
  return `${lines.join('\n')}\n`;
}

async function print(plan: PlanView, format: string | undefined, options: { live?: boolean } = {}): Promise<void> {
  const f = parseFormat(format);
  process.stdout.write(f === 'table' ? renderPlan(plan, options) : await structured(plan, f));
}

const fileOption = (c: Command) =>
  c
    .requiredOption('-f, --file <path>', 'a stack file (YAML, several documents) or a directory of them; repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--stack <name>', 'the stack: owner recorded on what it creates (default: the file or directory name)')
    .option('--format <format>', 'table, json or yaml', 'table');

export function registerApplyCommands(program: Command): void {
  fileOption(
    program
      .command('apply')
      .description('make the host match stack files: images, networks, pools, volumes, instances and templates (nothing changes if a file is bad)')
      .option('--dry-run', 'print the plan only (as `virtnode plan`)')
      .option('--allow-replace', 'allow changes that delete and make an object again (instances shut down gracefully first)')
      .option('--prune', 'delete what this stack created that the files no longer hold')
      .option('--reprovision', 'a changed userData makes the instance again so cloud-init runs it (with --allow-replace)'),
  ).action(async (o: StackOptions & { dryRun?: boolean; allowReplace?: boolean; prune?: boolean; reprovision?: boolean }) => {
    parseFormat(o.format);
    const input = {
      ...readStack(o),
      allowReplace: o.allowReplace === true,
      prune: o.prune === true,
      reprovision: o.reprovision === true,
    };
    const client = await api();
    const planned = await client.apply.plan(input);
    if (o.dryRun === true || !planned.changed) {
      await print(planned, o.format);
      return;
    }
    if (parseFormat(o.format) === 'table') process.stdout.write(renderPlan(planned));
    const done = await interruptibly((signal) =>
      client.apply.apply(input, { signal, onPhase: (phase, detail) => process.stderr.write(`  ${phase}: ${detail}\n`) }),
    );
    if (parseFormat(o.format) === 'table') {
      const n = done.objects.filter((x) => x.action !== 'none').length;
      process.stdout.write(`Applied: ${n} object${n === 1 ? '' : 's'} changed (stack ${done.stack}).\n`);
    } else {
      await print(done, o.format);
    }
  });

  fileOption(program.command('plan').description('what `apply -f` would change, field by field: live, next-boot or replace (changes nothing)'))
    .option('--allow-replace', 'plan as apply --allow-replace would')
    .option('--prune', 'plan as apply --prune would')
    .option('--reprovision', 'plan as apply --reprovision would')
    .action(async (o: StackOptions & { allowReplace?: boolean; prune?: boolean; reprovision?: boolean }) => {
      parseFormat(o.format);
      const input = { ...readStack(o), allowReplace: o.allowReplace === true, prune: o.prune === true, reprovision: o.reprovision === true };
      await print(await (await api()).apply.plan(input), o.format);
    });

  fileOption(program.command('diff').description('the stack files against the live state (QMP: vCPUs, memory, disks, NICs); exit code 1 when anything differs')).action(
    async (o: StackOptions) => {
      parseFormat(o.format);
      const result = await (await api()).apply.diff(readStack(o));
      await print(result, o.format, { live: true });
      if (result.changed || (result.drift ?? []).length > 0) process.exitCode = 1;
    },
  );

  program
    .command('schema')
    .description('the JSON Schema of a stack file document (for editors: yaml-language-server, VS Code)')
    .action(async () => {
      const { stackJsonSchema } = await import('../../api/stack.ts');
      process.stdout.write(`${JSON.stringify(stackJsonSchema(), null, 2)}\n`);
    });
}

