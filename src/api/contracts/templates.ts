/** Templates (`virtnode template ...`, `/templates`) and clones (`virtnode clone`, `/instances/{name}/clone`). */
import Type, { type Static } from 'typebox';
import { endpoints } from '../endpoint.ts';
import { CloneBody, Closed, CreateTemplateBody, Instance, Name, NameParams, StringEnum, Template } from '../schemas.ts';
import { Deleted } from './instances.ts';

/** What sealing did (template create, clone of an instance). */
export const Seal = Closed({
  method: Type.String({ description: 'guest-agent or offline' }),
  root: Type.Unsafe<string | null>({ type: 'string', nullable: true, description: 'the root filesystem sealed, when one was found' }),
  changes: Type.Array(Type.String(), { description: 'what changed, one line each' }),
  summary: Type.String(),
});
export type SealView = Static<typeof Seal>;

export const TemplateMade = Closed({ template: Template, seal: Seal });

export const Cloned = Closed({
  instance: Instance,
  clone: Closed({
    source: Type.String(),
    from: StringEnum(['instance', 'template']),
    mode: StringEnum(['full', 'linked']),
    base: Type.Optional(Type.String({ description: 'the read-only base both the source instance and the clone now sit on (linked clone of an instance)' })),
    seal: Type.Unsafe<SealView | null>({ ...Seal, nullable: true, description: 'null when the source is a template (sealed already)' }),
  }),
});
export type CloneOutcome = Static<typeof Cloned>;

export const Verified = Closed({ name: Type.String(), sha256: Type.String(), unchanged: Type.Boolean() });

/** The source of a clone: an instance or a template (the body's `name` is the new instance's). */
const SourceParams = Closed({ source: Name });

export const templateEndpoints = endpoints({
  list: { method: 'GET', path: '/templates', summary: 'templates, with the instances whose disks sit on each', response: Type.Array(Template) },
  get: { method: 'GET', path: '/templates/:name', summary: 'one template', params: NameParams, response: Template },
  verify: {
    method: 'POST',
    path: '/templates/:name/verify',
    summary: "recompute the checksum of the template's disk (`template info --verify`): unchanged, or its sha256 now",
    params: NameParams,
    response: Verified,
  },
  create: {
    method: 'POST',
    path: '/templates',
    summary:
      'turn an instance into a template: stop it, seal its disk (guest agent, else offline), keep the disk read-only, remove the instance (an operation; result: {template, seal})',
    body: CreateTemplateBody,
    response: TemplateMade,
    operation: true,
  },
  delete: {
    method: 'DELETE',
    path: '/templates/:name',
    summary: 'remove a template (refused while instances sit on it)',
    params: NameParams,
    response: Deleted,
  },
  clone: {
    method: 'POST',
    path: '/instances/:source/clone',
    summary:
      'a new instance from a stopped instance (its copy sealed offline) or a template, with an identity of its own; linked: a qcow2 overlay instead of a full copy (an operation; progress entries are the lines of the copy, each 10%; result: {instance, clone})',
    params: SourceParams,
    body: CloneBody,
    response: Cloned,
    operation: true,
  },
});
