import { portForwardView, portForwardViews, type PortForwardView } from '../../api/views.ts';
import type { PortApi } from '../../client/ports.ts';
import type { InstanceService } from '../../instances/service.ts';
import { validateName } from '../../lib/ids.ts';

/** The port-forward API in this process: the core called directly (no daemon running, or not reachable). */
export class LocalPorts implements PortApi {
  readonly via = 'local' as const;
  private readonly service: InstanceService;

  constructor(service: InstanceService) {
    this.service = service;
  }

  async list(instance: string): Promise<PortForwardView[]> {
    return portForwardViews(await this.service.get(validateName('name', instance)));
  }

  async add(instance: string, ports: string, address?: string): Promise<PortForwardView> {
    const { addPortForward } = await import('../../instances/port-forward.ts');
    return portForwardView(await addPortForward(this.service, validateName('name', instance), ports, address ?? '127.0.0.1'));
  }

  async remove(instance: string, port: string): Promise<PortForwardView> {
    const { removePortForward } = await import('../../instances/port-forward.ts');
    return portForwardView(await removePortForward(this.service, validateName('name', instance), port));
  }
}
