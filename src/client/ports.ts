import type { PortForwardView } from '../api/views.ts';
import type { ApiClient } from './http.ts';

/** An instance's user-mode port forwards (`virtnode port ...`), in-process or through the daemon. */
export interface PortApi {
  readonly via: 'local' | 'daemon';
  /** virtnode's SSH forward (owner ssh) first, then the user's. */
  list(instance: string): Promise<PortForwardView[]>;
  /** `ports`: HOST:GUEST[/tcp|udp]; bound to 127.0.0.1 unless `address`. Live when the instance runs. */
  add(instance: string, ports: string, address?: string): Promise<PortForwardView>;
  /** `port`: HOST[/tcp|udp]. */
  remove(instance: string, port: string): Promise<PortForwardView>;
}

const enc = encodeURIComponent;

/** The port-forward API over HTTP (UNIX socket or HTTPS). */
export class RemotePorts implements PortApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(instance: string): Promise<PortForwardView[]> {
    return (await this.client.request<PortForwardView[]>('GET', `/instances/${enc(instance)}/ports`)).body.map(orderedForward);
  }

  async add(instance: string, ports: string, address?: string): Promise<PortForwardView> {
    return orderedForward((await this.client.request<PortForwardView>('POST', `/instances/${enc(instance)}/ports`, { ports, ...(address === undefined ? {} : { address }) })).body);
  }

  async remove(instance: string, port: string): Promise<PortForwardView> {
    return orderedForward((await this.client.request<PortForwardView>('DELETE', `/instances/${enc(instance)}/ports/${enc(port)}`)).body);
  }
}

function orderedForward(f: PortForwardView): PortForwardView {
  return { protocol: f.protocol, hostAddress: f.hostAddress, hostPort: f.hostPort, guestPort: f.guestPort, ...(f.owner === undefined ? {} : { owner: f.owner }) };
}
