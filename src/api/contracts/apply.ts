/** Desired state from stack files: `virtnode plan/apply/diff/schema`, `/apply` and `/schema/apply` in the REST API. */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { ApplyBody, DiffBody, PlanResult } from '../stack.ts';

export const applyEndpoints = endpoints({
  plan: {
    method: 'POST',
    path: '/apply/plan',
    summary: 'what applying the stack files would change, field by field, with the class of each change (live, next-boot, replace); changes nothing',
    body: ApplyBody,
    response: PlanResult,
  },
  apply: {
    method: 'POST',
    path: '/apply',
    summary: 'make the host match the stack files (an operation; result: the plan with the outcome of each object). Bad files are refused before anything changes',
    body: ApplyBody,
    response: PlanResult,
    operation: true,
  },
  diff: {
    method: 'POST',
    path: '/apply/diff',
    summary: 'the stack files against the live state (running instances as QEMU has them), with what differs between the record and the live state',
    body: DiffBody,
    response: PlanResult,
  },
  schema: {
    method: 'GET',
    path: '/schema/apply',
    summary: 'the JSON Schema of one document of a stack file (for editors)',
    response: Type.Object({}, { additionalProperties: true }),
  },
});
