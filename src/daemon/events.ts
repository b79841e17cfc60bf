import { EventEmitter } from 'node:events';
import type { InstanceState } from '../instances/model.ts';
import type { OperationView } from '../api/schemas.ts';

/** An instance changed state (seen by the supervisor, whoever caused it: the API, the CLI or the guest). */
export interface InstanceEvent {
  type: 'instance';
  name: string;
  state: InstanceState | 'deleted';
  previous: InstanceState | undefined;
  reason?: string;
  at: string;
}

export interface OperationEvent {
  type: 'operation';
  operation: OperationView;
  at: string;
}

export type DaemonEvent = InstanceEvent | OperationEvent;

/** The daemon's event bus: the /events WebSocket and anything else that wants to follow changes. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0); // one listener per connected WebSocket client
  }

  publish(event: DaemonEvent): void {
    this.emitter.emit('event', event);
  }

  subscribe(listener: (event: DaemonEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  subscribers(): number {
    return this.emitter.listenerCount('event');
  }
}
