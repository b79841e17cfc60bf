import { instanceView, type InstanceView } from '../../api/views.ts';
import type { InstanceApi, LaunchOutcome, StopRequest } from '../../client/instances.ts';
import type { Instance } from '../../instances/model.ts';
import type { InstanceService } from '../../instances/service.ts';
import type { CreateRequest } from '../../instances/validate.ts';
import type { LaunchRequest } from '../../instances/launch-validate.ts';
import { PolicyRepository, type RestartPolicy } from '../../store/policies.ts';

/** The instance API in this process: the core called directly (no daemon running, or not reachable). */
export class LocalInstances implements InstanceApi {
  readonly via = 'local' as const;
  private readonly service: InstanceService;
  private readonly policies: PolicyRepository;

  constructor(service: InstanceService) {
    this.service = service;
    this.policies = new PolicyRepository(service.db);
  }

  private view(i: Instance): InstanceView {
    return instanceView(i, this.policies.get(i.name));
  }

  async list(): Promise<InstanceView[]> {
    const policies = this.policies.all();
    const all = await this.service.list();
    const { nicAddresses } = await import('../../instances/addresses.ts');
    const addresses = await Promise.all(all.map((i) => nicAddresses(this.service, i)));
    return all.map((i, k) => instanceView(i, policies.get(i.name) ?? { autostart: false, restart: 'no' }, addresses[k]));
  }

  async get(name: string): Promise<InstanceView> {
    const instance = await this.service.get(name);
    const { nicAddresses } = await import('../../instances/addresses.ts');
    return instanceView(instance, this.policies.get(name), await nicAddresses(this.service, instance, { agent: true }));
  }

  async create(request: CreateRequest, options: { start?: boolean }): Promise<InstanceView> {
    let instance = await this.service.create(request);
    if (options.start) instance = await this.service.start(instance.name);
    return this.view(instance);
  }

  async start(name: string): Promise<InstanceView> {
    return this.view(await this.service.start(name));
  }

  async stop(name: string, request: StopRequest): Promise<{ instance: InstanceView; method: string }> {
    const result = await this.service.stop(name, request);
    return { instance: this.view(result.instance), method: result.method };
  }

  async restart(name: string, request: StopRequest): Promise<InstanceView> {
    return this.view(await this.service.restart(name, request));
  }

  async pause(name: string): Promise<InstanceView> {
    return this.view(await this.service.pause(name));
  }

  async resume(name: string): Promise<InstanceView> {
    return this.view(await this.service.resume(name));
  }

  async delete(name: string, options: { force?: boolean }): Promise<void> {
    await this.service.delete(name, options);
  }

  async setPolicy(name: string, policy: { autostart?: boolean; restartPolicy?: RestartPolicy }): Promise<InstanceView> {
    const instance = await this.service.get(name);
    const current = this.policies.get(name);
    this.policies.set(name, { autostart: policy.autostart ?? current.autostart, restart: policy.restartPolicy ?? current.restart });
    return this.view(instance);
  }

  async launch(request: LaunchRequest, options: { noWait?: boolean; timeoutMs?: number; onPhase?: (phase: string, detail: string, elapsedMs: number) => void }): Promise<LaunchOutcome> {
    const { launch } = await import('../../instances/launch.ts');
    const { launchSource } = await import('../../templates/launch-source.ts');
    const result = await launch(this.service, launchSource(this.service.core), request, {
      ...(options.noWait === undefined ? {} : { noWait: options.noWait }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.onPhase === undefined ? {} : { onPhase: options.onPhase }),
    });
    return {
      instance: this.view(result.instance),
      address: result.address ?? null,
      cloudInit: result.cloudInit ?? null,
      warnings: result.valid.userDataWarnings.map((w) => `${w.path}: ${w.message}`),
      ssh: { identityFile: result.instance.spec.ssh?.identityFile ?? null, knownHosts: this.service.paths.knownHosts },
    };
  }
}
