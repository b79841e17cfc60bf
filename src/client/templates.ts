import { orderedInstanceView, type InstanceView, type SealView, type TemplateView } from '../api/views.ts';
import type { ApiClient } from './http.ts';
import { progressLineWriter, type ProgressOutput } from '../images/pull/progress.ts';
import { followOperation, type PhaseListener } from './operations.ts';

export interface MadeTemplate {
  template: TemplateView;
  seal: SealView;
}

export interface CloneOutcome {
  instance: InstanceView;
  clone: { source: string; from: 'instance' | 'template'; mode: 'full' | 'linked'; base?: string; seal: SealView | null };
}

export interface CloneOptions {
  linked?: boolean;
  /** Start the clone once it is made. */
  start?: boolean;
  /** Copy progress of a full clone (a line each 10% off a terminal). */
  progress?: ProgressOutput;
  signal?: AbortSignal;
}

/**
 * Templates (`virtnode template ...`) and clones (`virtnode clone`), in this process or through the daemon:
 * both return the same views.
 */
export interface TemplateApi {
  readonly via: 'local' | 'daemon';
  list(): Promise<TemplateView[]>;
  get(name: string): Promise<TemplateView>;
  /** Recomputes the disk's sha256: a template's disk never changes. */
  verify(name: string): Promise<{ name: string; sha256: string; unchanged: boolean }>;
  /** onPhase: stop, seal, store, with the time since it began. */
  create(instance: string, name: string | undefined, options: { onPhase?: PhaseListener; signal?: AbortSignal }): Promise<MadeTemplate>;
  remove(name: string): Promise<void>;
  clone(source: string, name: string, options: CloneOptions): Promise<CloneOutcome>;
}

const enc = encodeURIComponent;

/**
 * The view with its fields in the documented order, as templateView builds it (the daemon's JSON serializer
 * puts optional fields last; printed output must not depend on that).
 */
export function orderedTemplateView(view: TemplateView): TemplateView {
  const { cpus, memoryMiB, accel, boot, user, networks } = view.defaults;
  return {
    name: view.name,
    source: view.source,
    disk: view.disk,
    format: view.format,
    virtualSize: view.virtualSize,
    sha256: view.sha256,
    ...(view.image === undefined ? {} : { image: { name: view.image.name, sha256: view.image.sha256 } }),
    defaults: {
      cpus,
      memoryMiB,
      accel,
      ...(boot === undefined ? {} : { boot: { kernel: boot.kernel, ...(boot.initrd === undefined ? {} : { initrd: boot.initrd }), ...(boot.cmdline === undefined ? {} : { cmdline: boot.cmdline }) } }),
      ...(user === undefined ? {} : { user }),
      networks,
    },
    sealMethod: view.sealMethod,
    sealReport: view.sealReport,
    clones: view.clones,
    createdAt: view.createdAt,
  };
}

/** The fields of a clone outcome in the documented order, whichever side made it. */
export function orderedCloneOutcome(outcome: CloneOutcome): CloneOutcome {
  const { source, from, mode, base, seal } = outcome.clone;
  return {
    instance: orderedInstanceView(outcome.instance),
    clone: { source, from, mode, ...(base === undefined ? {} : { base }), seal: seal === null ? null : { method: seal.method, root: seal.root, changes: seal.changes, summary: seal.summary } },
  };
}

/** The template API over HTTP (UNIX socket or HTTPS). */
export class RemoteTemplates implements TemplateApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(): Promise<TemplateView[]> {
    return (await this.client.request<TemplateView[]>('GET', '/templates')).body.map(orderedTemplateView);
  }

  async get(name: string): Promise<TemplateView> {
    return orderedTemplateView((await this.client.request<TemplateView>('GET', `/templates/${enc(name)}`)).body);
  }

  async verify(name: string): Promise<{ name: string; sha256: string; unchanged: boolean }> {
    return (await this.client.request<{ name: string; sha256: string; unchanged: boolean }>('POST', `/templates/${enc(name)}/verify`)).body;
  }

  async create(instance: string, name: string | undefined, options: { onPhase?: PhaseListener; signal?: AbortSignal }): Promise<MadeTemplate> {
    const body = { instance, ...(name === undefined ? {} : { name }) };
    const made = (await followOperation(this.client, 'POST', '/templates', body, options.onPhase, options)) as MadeTemplate;
    return { template: orderedTemplateView(made.template), seal: made.seal };
  }

  async remove(name: string): Promise<void> {
    await this.client.request('DELETE', `/templates/${enc(name)}`);
  }

  async clone(source: string, name: string, options: CloneOptions): Promise<CloneOutcome> {
    const body = { name, ...(options.linked === true ? { linked: true } : {}) };
    const made = (await followOperation(this.client, 'POST', `/instances/${enc(source)}/clone`, body, options.progress === undefined ? undefined : progressLineWriter(options.progress), options)) as CloneOutcome;
    if (options.start !== true) return orderedCloneOutcome(made);
    const started = (await this.client.request<InstanceView>('POST', `/instances/${enc(name)}/start`)).body;
    return orderedCloneOutcome({ ...made, instance: started });
  }
}
