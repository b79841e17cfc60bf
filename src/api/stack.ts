/**
 * The stack file of `virtnode apply` (YAML, one object per document) and the answers of plan, apply and diff.
 * Built from the API's own schemas (names, modes, formats), so the JSON Schema editors get (`virtnode schema`,
 * GET /schema/apply) is the one the daemon and the CLI check files against. No Node imports (the web UI may use it).
 */
import Type, { type Static, type TSchema } from 'typebox';
import { Closed, CreateNetworkBody, CreateVolumeBody, Name, NAME_PATTERN, StringEnum, Tuning } from './schemas.ts';

/** Kinds `apply` manages, in the order it makes them (and deletes them in reverse). */
export const SUPPORTED_KINDS = ['image', 'network', 'pool', 'volume', 'instance', 'template'] as const;
export type StackKind = (typeof SUPPORTED_KINDS)[number];
/** Kinds a stack file may one day hold that apply does not manage yet: refused with their own message. */
export const UNSUPPORTED_KINDS = [] as const;

const Kind = <K extends StackKind>(kind: K) => Type.Literal(kind, { description: `the object is a ${kind}` });

const { name: _n, ...networkFields } = CreateNetworkBody.properties;
export const NetworkDocument = Closed({ kind: Kind('network'), name: Name, ...networkFields }, { description: 'a managed network (`virtnode network create`)' });

export const ImageDocument = Closed(
  {
    kind: Kind('image'),
    name: Name,
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, pattern: '^https?://', description: 'pull it from here (`virtnode image pull`)' })),
    sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'the digest it must have; another digest under this name is a replace' })),
    checksumsUrl: Type.Optional(Type.String({ maxLength: 8192, pattern: '^https?://', description: 'a SHA256SUMS file to verify the pull against' })),
    file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'or import this file on the host (`virtnode image import`)' })),
  },
  { description: 'an image, pulled or imported once (give url or file)' },
);

export const TemplateDocument = Closed(
  {
    kind: Kind('template'),
    name: Name,
    instance: Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'the instance it is made from (`virtnode template create`), which becomes the template' }),
  },
  { description: 'a template, made once from an existing instance' },
);

export const PoolDocument = Closed(
  { kind: Kind('pool'), name: Name, path: Type.String({ minLength: 1, maxLength: 4096, description: 'absolute path of an existing directory on the host' }) },
  { description: 'a storage pool (`virtnode pool create`)' },
);

const { name: _v, ...volumeFields } = CreateVolumeBody.properties;
export const VolumeDocument = Closed({ kind: Kind('volume'), name: Name, ...volumeFields }, { description: 'a storage volume (`virtnode volume create`)' });

export const StackNic = Closed({
  network: Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'user, or a managed network (of this file or of the host)' }),
  ip: Type.Optional(Type.String({ maxLength: 64, description: 'static address on a nat/isolated network' })),
});

export const InstanceDocument = Closed(
  {
    kind: Kind('instance'),
    name: Name,
    state: Type.Optional(StringEnum(['running', 'stopped'], { description: 'default running' })),
    image: Type.Optional(Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'launch from this image (with a cloud-init identity)' })),
    kernel: Type.Optional(Type.String({ maxLength: 4096, description: 'boot this kernel directly (absolute path on the host)' })),
    initrd: Type.Optional(Type.String({ maxLength: 4096 })),
    cmdline: Type.Optional(Type.String({ maxLength: 4096 })),
    diskSize: Type.Optional(Type.String({ maxLength: 32, description: 'size of its own disk, e.g. 10G (fixed at creation)' })),
    cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'default 1; applied at next boot' })),
    memory: Type.Optional(Type.String({ maxLength: 32, description: 'e.g. 512M (default), 2G; a bare number is MiB' })),
    accel: Type.Optional(StringEnum(['auto', 'kvm', 'tcg'])),
    nics: Type.Optional(Type.Array(StackNic, { maxItems: 8, description: 'its NICs in order (default: one on user)' })),
    volumes: Type.Optional(Type.Array(Type.String({ pattern: NAME_PATTERN, maxLength: 63 }), { maxItems: 16, description: 'volumes attached as disks' })),
    ports: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64, description: 'user-mode port forwards HOST:GUEST[/tcp|udp] (bound to 127.0.0.1)' })),
    userData: Type.Optional(Type.String({ maxLength: 1024 * 1024, description: 'cloud-init user-data (image instances; runs at first boot only)' })),
    sshAuthorizedKeys: Type.Optional(Type.Array(Type.String({ maxLength: 16_384 }), { maxItems: 64 })),
    tuning: Type.Optional(Tuning),
  },
  { description: 'a virtual machine' },
);

export type NetworkDoc = Static<typeof NetworkDocument>;
export type PoolDoc = Static<typeof PoolDocument>;
export type VolumeDoc = Static<typeof VolumeDocument>;
export type InstanceDoc = Static<typeof InstanceDocument>;
export type ImageDoc = Static<typeof ImageDocument>;
export type TemplateDoc = Static<typeof TemplateDocument>;
export type StackDoc = ImageDoc | NetworkDoc | PoolDoc | VolumeDoc | InstanceDoc | TemplateDoc;

export const DOCUMENT_SCHEMAS: Record<StackKind, TSchema> = {
  image: ImageDocument,
  template: TemplateDocument,
  network: NetworkDocument,
  pool: PoolDocument,
  volume: VolumeDocument,
  instance: InstanceDocument,
};

/** The JSON Schema of one document of a stack file (each YAML document is one object). */
export function stackJsonSchema(): Record<string, unknown> {
  const strip = (s: TSchema): unknown => JSON.parse(JSON.stringify(s));
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://virtnode.dev/schema/apply.json',
    title: 'virtnode stack file document',
    description: `one object per YAML document; kind is one of ${SUPPORTED_KINDS.join(', ')}`,
    oneOf: SUPPORTED_KINDS.map((k) => ({ $ref: `#/definitions/${k}` })),
    definitions: Object.fromEntries(SUPPORTED_KINDS.map((k) => [k, strip(DOCUMENT_SCHEMAS[k])])),
  };
}

/** A file of the stack as the CLI read it: its name (for messages) and its text. */
export const StackFile = Closed({ path: Type.String({ minLength: 1, maxLength: 4096 }), text: Type.String({ maxLength: 4 * 1024 * 1024 }) });

export const ApplyBody = Closed({
  files: Type.Array(StackFile, { minItems: 1, maxItems: 256 }),
  stack: Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'the owner recorded on what this apply creates (default: the file or directory name)' }),
  dryRun: Type.Optional(Type.Boolean({ description: 'plan only' })),
  allowReplace: Type.Optional(Type.Boolean({ description: 'allow changes that delete and recreate an object' })),
  prune: Type.Optional(Type.Boolean({ description: 'delete objects this stack created that the files no longer hold' })),
  reprovision: Type.Optional(Type.Boolean({ description: 'a changed userData recreates the instance so cloud-init runs it' })),
});
export const DiffBody = Closed({ files: ApplyBody.properties.files, stack: ApplyBody.properties.stack });

export const CHANGE_CLASSES = ['create', 'live', 'next-boot', 'replace', 'delete', 'none'] as const;
export type ChangeClass = (typeof CHANGE_CLASSES)[number];

export const FieldChange = Closed({
  field: Type.String(),
  from: Type.Optional(Type.String()),
  to: Type.Optional(Type.String()),
  class: StringEnum(CHANGE_CLASSES),
  note: Type.Optional(Type.String()),
});
export type FieldChangeView = Static<typeof FieldChange>;

export const PlannedObject = Closed({
  kind: Type.String(),
  name: Type.String(),
  action: StringEnum(['create', 'update', 'replace', 'delete', 'none']),
  changes: Type.Array(FieldChange),
  /** Why the action cannot run as asked (a replace without allowReplace): nothing of the plan runs then. */
  blocked: Type.Optional(Type.String()),
  /** After apply: done, failed (with the error) or skipped (an earlier one failed). */
  outcome: Type.Optional(StringEnum(['done', 'failed', 'skipped'])),
  error: Type.Optional(Type.String()),
});
export type PlannedObjectView = Static<typeof PlannedObject>;

export const PlanResult = Closed({
  stack: Type.String(),
  objects: Type.Array(PlannedObject),
  changed: Type.Boolean({ description: 'anything to do (plan) or anything done (apply)' }),
  applied: Type.Boolean({ description: 'false for a plan (dry run)' }),
  drift: Type.Optional(Type.Array(Closed({ kind: Type.String(), name: Type.String(), field: Type.String(), recorded: Type.String(), live: Type.String() }))),
});
export type PlanView = Static<typeof PlanResult>;
