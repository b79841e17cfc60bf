import type { Command } from 'commander';
import type { OperationStatus, OperationView } from '../../api/schemas.ts';
import { invalid, VirtnodeError } from '../../lib/errors.ts';
import { parseDuration } from '../duration.ts';
import { keyValues, printer, table } from '../output.ts';

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const STATUSES: readonly OperationStatus[] = ['running', 'succeeded', 'failed', 'cancelled'];

function checkId(id: string): string {
  if (!ID.test(id)) throw invalid('id', `"${id}" is not an operation id`, 'ids look like 3f2b8c1e-...-...: see `virtnode operation ls`');
  return id;
}

function progressText(op: OperationView): string {
  const p = op.progress;
  const parts = [p.phase, p.percent === undefined ? undefined : `${p.percent}%`].filter((x) => x !== undefined);
  return parts.length === 0 ? '-' : parts.join(' ');
}

async function operations() {
  return (await (await import('../api.ts')).api()).operations;
}

/** Waits in slices (one long-poll each through a daemon) until the operation ends or `timeoutMs` passes. */
async function waitFor(id: string, timeoutMs: number): Promise<OperationView> {
  const [ops, { WAIT_SLICE_S }] = await Promise.all([operations(), import('../../client/contract-client.ts')]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = Math.max(0, deadline - Date.now());
    const op = await ops.wait({ id, timeout: Math.min(WAIT_SLICE_S, left / 1000) });
    if (op.status !== 'running' || Date.now() >= deadline) return op;
  }
}

function operationText(op: OperationView): string {
  return keyValues([
    ['ID', op.id],
    ['Kind', op.kind],
    ['Target', op.target],
    ['Status', op.status],
    ['Progress', op.progress.detail === undefined ? progressText(op) : `${progressText(op)}: ${op.progress.detail}`],
    ...op.progress.entries.map((e, n): [string, string] => [n === 0 ? 'Phases' : '', `${(e.elapsedMs / 1000).toFixed(1)}s ${e.phase}: ${e.detail}`]),
    ['Error', op.error === undefined ? undefined : `${op.error.code}: ${op.error.message}`],
    ['Hint', op.error?.hint],
    ['Result', op.result === undefined ? undefined : JSON.stringify(op.result)],
    ['Created', op.createdAt],
    ['Finished', op.finishedAt],
    ['Started by', op.startedBy],
  ]);
}

export function registerOperationCommands(program: Command): void {
  const operation = program
    .command('operation')
    .alias('op')
    .description("the daemon's long operations (launch, stop, pull...): kept across daemon restarts, the last 1,000 for 7 days");

  operation
    .command('ls')
    .alias('list')
    .description('recent operations, newest first')
    .option('--status <status>', 'only running, succeeded, failed or cancelled ones')
    .option('--limit <n>', 'at most this many (1-1000)', '50')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { status?: string; limit: string; format?: string }) => {
      const print = printer(o.format);
      if (o.status !== undefined && !STATUSES.includes(o.status as OperationStatus)) throw invalid('--status', `"${o.status}" is not valid`, `use ${STATUSES.join(', ')}`);
      if (!/^\d+$/.test(o.limit) || Number(o.limit) < 1 || Number(o.limit) > 1000) throw invalid('--limit', `"${o.limit}" is not valid`, 'use a whole number from 1 to 1000');
      const ops = await (await operations()).list({ limit: Number(o.limit), ...(o.status === undefined ? {} : { status: o.status as OperationStatus }) });
      await print(ops, () => table(['ID', 'KIND', 'TARGET', 'STATUS', 'PROGRESS/ERROR', 'CREATED'], ops.map((op) => [op.id, op.kind, op.target ?? '-', op.status, op.status === 'running' ? progressText(op) : (op.error?.code ?? '-'), op.createdAt])));
    });

  operation
    .command('info')
    .description('one operation: status, phases, result or error')
    .argument('<id>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (id: string, o: { format?: string }) => {
      const print = printer(o.format);
      const op = await (await operations()).get({ id: checkId(id) });
      await print(op, () => operationText(op));
    });

  operation
    .command('wait')
    .description('wait for an operation to end; exits non-zero with its error if it failed or was cancelled')
    .argument('<id>')
    .option('--timeout <duration>', 'give up after this long (seconds, or 90s, 10m, 1h)', '10m')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (id: string, o: { timeout: string; format?: string }) => {
      const print = printer(o.format);
      const timeoutMs = parseDuration('--timeout', o.timeout);
      const op = await waitFor(checkId(id), timeoutMs);
      if (op.status === 'running') throw new VirtnodeError('TIMEOUT', `operation ${op.id} is still running after ${o.timeout}`, { hint: 'wait again, or cancel it with `virtnode operation cancel ID`' });
      await print(op, () => operationText(op));
      const { operationError } = await import('../../client/contract-client.ts');
      const error = operationError(op);
      if (error !== undefined) throw error;
    });

  operation
    .command('cancel')
    .description('ask a running operation to stop (the work honours it at its next step); see it end with `operation wait`')
    .argument('<id>')
    .action(async (id: string) => {
      const op = await (await operations()).cancel({ id: checkId(id) });
      process.stdout.write(`Cancelling operation ${op.id} (${op.kind}${op.target === undefined ? '' : ` ${op.target}`})\n`);
    });
}
