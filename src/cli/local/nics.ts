import { attachedNicView, type AttachedNicView } from '../../api/views.ts';
import type { NicApi } from '../../client/nics.ts';
import type { NicAddresses } from '../../instances/addresses.ts';
import type { InstanceService } from '../../instances/service.ts';
import { validateName } from '../../lib/ids.ts';

/** The NIC API in this process: the core called directly (no daemon running, or not reachable). */
export class LocalNics implements NicApi {
  readonly via = 'local' as const;
  private readonly service: InstanceService;

  constructor(service: InstanceService) {
    this.service = service;
  }

  async list(instance: string): Promise<NicAddresses[]> {
    const { nicAddresses } = await import('../../instances/addresses.ts');
    return nicAddresses(this.service, await this.service.get(validateName('name', instance)), { agent: true });
  }

  async attach(instance: string, network: string, ip?: string): Promise<AttachedNicView> {
    const { attachNic } = await import('../../instances/nics.ts');
    return attachedNicView(await attachNic(this.service, validateName('name', instance), network, ip));
  }

  async detach(instance: string, nic: string): Promise<AttachedNicView> {
    const { detachNic } = await import('../../instances/nics.ts');
    return attachedNicView(await detachNic(this.service, validateName('name', instance), nic));
  }
}
