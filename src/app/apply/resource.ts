/** The apply contract, implemented once over the core (the daemon's routes and the CLI both call this). */
import { applyEndpoints } from '../../api/contracts/apply.ts';
import { type PlanView, stackJsonSchema } from '../../api/stack.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import type { AppCore } from '../context.ts';
import { job } from '../operations.ts';
import { checkRequestPath } from '../request-paths.ts';
import { type Caller, resource } from '../resource.ts';
import { currentState, type Drift, stackContext } from './current.ts';
import { executePlan } from './execute.ts';
import { formatIssues, parseStackFiles } from './locate.ts';
import type { Located } from './model.ts';
import { plan, type PlannedObject, type PlanOptions, planView } from './planner.ts';
import { validateStack } from './validate.ts';

interface StackInput {
  files: Array<{ path: string; text: string }>;
  stack: string;
}

function view(stack: string, objects: PlannedObject[], applied: boolean, drift?: Drift[]): PlanView {
  return { stack, objects: planView(objects), changed: objects.some((o) => o.action !== 'none'), applied, ...(drift === undefined ? {} : { drift }) };
}

export const apply = resource('apply', applyEndpoints, (core: AppCore) => {
  /** Everything checked, nothing changed: the files parsed and validated against the host, or refused whole. */
  const prepare = async (input: StackInput, caller: Caller | undefined, live: boolean) => {
    const { docs, issues } = parseStackFiles(input.files);
    const { state, drift } = await currentState(core, { live });
    const valid = validateStack(docs, await stackContext(core, input.stack, state));
    const all = [...issues, ...valid.issues];
    if (all.length > 0) {
      throw new VirtnodeError('INVALID', `the stack files have ${all.length === 1 ? 'a problem' : `${all.length} problems`}; nothing was changed\n${formatIssues(all)}`, {
        hint: 'fix them and run again (virtnode schema prints the JSON Schema for editors)',
      });
    }
    if (caller?.remote === true) checkPaths(core, caller, valid.desired);
    return { desired: valid.desired, state, drift };
  };
  const options = (input: StackInput & { allowReplace?: boolean; prune?: boolean; reprovision?: boolean }): PlanOptions => ({
    stack: input.stack,
    allowReplace: input.allowReplace === true,
    prune: input.prune === true,
    reprovision: input.reprovision === true,
  });

  return {
    async plan(input, caller) {
      const { desired, state } = await prepare(input, caller, false);
      return view(input.stack, plan(desired, state, options(input)), false);
    },

    async apply(input, caller) {
      const { desired, state } = await prepare(input, caller, false);
      const objects = plan(desired, state, options(input));
      const blocked = objects.filter((o) => o.blocked !== undefined);
      if (input.dryRun !== true && blocked.length > 0) {
        throw new VirtnodeError('INVALID_STATE', `nothing was applied: the plan replaces ${blocked.map((o) => `${o.kind} ${o.name}`).join(', ')}`, {
          hint: 'see what changes with virtnode plan; run again with --allow-replace to let them be made again (running instances are shut down gracefully first)',
        });
      }
      return job('apply', `stacks/${input.stack}`, async (ctx) => {
        if (input.dryRun === true) return view(input.stack, objects, false);
        const done = await executePlan(core, objects, { stack: input.stack, ctx });
        return view(input.stack, done, true);
      });
    },

    async diff(input, caller) {
      const { desired, state, drift } = await prepare(input, caller, true);
      return view(input.stack, plan(desired, state, { stack: input.stack }), false, drift);
    },

    async schema() {
      return stackJsonSchema();
    },
  };
});

/** A client over TCP names host paths only under the directories the daemon allows (as `virtnode create` does). */
function checkPaths(core: AppCore, caller: Caller, desired: Located[]): void {
  for (const d of desired) {
    if (d.kind === 'pool') checkRequestPath(core.remotePaths, caller, 'path', d.path, 'directory');
    if (d.kind === 'instance' && d.boot !== undefined) {
      checkRequestPath(core.remotePaths, caller, 'kernel', d.boot.kernel, 'file');
      if (d.boot.initrd !== undefined) checkRequestPath(core.remotePaths, caller, 'initrd', d.boot.initrd, 'file');
    }
  }
}
