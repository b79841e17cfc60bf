import { orderedInstanceView as ordered, type InstanceView } from '../api/views.ts';
import type { CreateRequest } from '../instances/validate.ts';
import type { LaunchRequest } from '../instances/launch-validate.ts';
import type { RestartPolicy } from '../store/policies.ts';
import type { ApiClient } from './http.ts';
import { followOperation, type PhaseListener } from './operations.ts';

export interface StopRequest {
  force?: boolean;
  timeoutMs?: number;
}

export interface LaunchOutcome {
  instance: InstanceView;
  address: string | null;
  cloudInit: { status: string; datasource?: string | undefined; detail?: string | undefined } | null;
  warnings: string[];
  ssh: { identityFile: string | null; knownHosts: string };
}

/**
 * What the instance commands need, whether they run the core in-process or go through the daemon: the CLI
 * formats the same views either way, so its output is the same.
 */
export interface InstanceApi {
  readonly via: 'local' | 'daemon';
  list(): Promise<InstanceView[]>;
  get(name: string): Promise<InstanceView>;
  create(request: CreateRequest, options: { start?: boolean }): Promise<InstanceView>;
  start(name: string): Promise<InstanceView>;
  stop(name: string, request: StopRequest): Promise<{ instance: InstanceView; method: string }>;
  restart(name: string, request: StopRequest): Promise<InstanceView>;
  pause(name: string): Promise<InstanceView>;
  resume(name: string): Promise<InstanceView>;
  delete(name: string, options: { force?: boolean }): Promise<void>;
  setPolicy(name: string, policy: { autostart?: boolean; restartPolicy?: RestartPolicy }): Promise<InstanceView>;
  launch(request: LaunchRequest, options: { noWait?: boolean; timeoutMs?: number; onPhase?: PhaseListener }): Promise<LaunchOutcome>;
}

const enc = encodeURIComponent;

/** The instance API over HTTP (UNIX socket or HTTPS). */
export class RemoteInstances implements InstanceApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(): Promise<InstanceView[]> {
    return (await this.client.request<InstanceView[]>('GET', '/instances')).body.map(ordered);
  }

  async get(name: string): Promise<InstanceView> {
    return ordered((await this.client.request<InstanceView>('GET', `/instances/${enc(name)}`)).body);
  }

  async create(request: CreateRequest, options: { start?: boolean }): Promise<InstanceView> {
    const body: Record<string, unknown> = { ...request, ...(options.start ? { start: true } : {}) };
    if (typeof body['cpus'] === 'string' && /^\d+$/.test(body['cpus'])) body['cpus'] = Number(body['cpus']);
    return ordered((await this.client.request<InstanceView>('POST', '/instances', body)).body);
  }

  async start(name: string): Promise<InstanceView> {
    return ordered((await this.client.request<InstanceView>('POST', `/instances/${enc(name)}/start`)).body);
  }

  async stop(name: string, request: StopRequest): Promise<{ instance: InstanceView; method: string }> {
    const op = (await followOperation(this.client, 'POST', `/instances/${enc(name)}/stop`, stopBody(request))) as { instance: InstanceView; method: string };
    return { instance: ordered(op.instance), method: op.method };
  }

  async restart(name: string, request: StopRequest): Promise<InstanceView> {
    return ordered(((await followOperation(this.client, 'POST', `/instances/${enc(name)}/restart`, stopBody(request))) as { instance: InstanceView }).instance);
  }

  async pause(name: string): Promise<InstanceView> {
    return ordered((await this.client.request<InstanceView>('POST', `/instances/${enc(name)}/pause`)).body);
  }

  async resume(name: string): Promise<InstanceView> {
    return ordered((await this.client.request<InstanceView>('POST', `/instances/${enc(name)}/resume`)).body);
  }

  async delete(name: string, options: { force?: boolean }): Promise<void> {
    await this.client.request('DELETE', `/instances/${enc(name)}${options.force ? '?force=true' : ''}`);
  }

  async setPolicy(name: string, policy: { autostart?: boolean; restartPolicy?: RestartPolicy }): Promise<InstanceView> {
    return ordered((await this.client.request<InstanceView>('PATCH', `/instances/${enc(name)}`, policy)).body);
  }

  async launch(request: LaunchRequest, options: { noWait?: boolean; timeoutMs?: number; onPhase?: PhaseListener }): Promise<LaunchOutcome> {
    const body = {
      image: request.image,
      ...(request.name === undefined ? {} : { name: request.name }),
      ...(request.cpus === undefined ? {} : { cpus: Number(request.cpus) }),
      ...(request.memory === undefined ? {} : { memory: request.memory }),
      ...(request.diskSize === undefined ? {} : { diskSize: request.diskSize }),
      ...(request.sshAuthorizedKeys === undefined ? {} : { sshAuthorizedKeys: request.sshAuthorizedKeys }),
      ...(request.userDataText === undefined ? {} : { userData: request.userDataText }),
      ...(request.networkConfigText === undefined ? {} : { networkConfig: request.networkConfigText }),
      ...(request.timezone === undefined ? {} : { timezone: request.timezone }),
      ...(request.passwordHash === undefined ? {} : { passwordHash: request.passwordHash }),
      ...(request.user === undefined ? {} : { user: request.user }),
      ...(request.accel === undefined ? {} : { accel: request.accel }),
      ...(request.seed === undefined ? {} : { seed: request.seed }),
      ...(request.networks === undefined ? {} : { networks: request.networks }),
      ...(request.ips === undefined ? {} : { ips: request.ips }),
      wait: options.noWait !== true,
      ...(options.timeoutMs === undefined ? {} : { timeoutSeconds: Math.max(1, Math.round(options.timeoutMs / 1000)) }),
    };
    const outcome = (await followOperation(this.client, 'POST', '/instances/launch', body, options.onPhase)) as LaunchOutcome;
    return { ...outcome, instance: ordered(outcome.instance) };
  }
}

function stopBody(request: StopRequest): Record<string, unknown> {
  return { ...(request.force ? { force: true } : {}), ...(request.timeoutMs === undefined ? {} : { timeoutSeconds: Math.ceil(request.timeoutMs / 1000) }) };
}
