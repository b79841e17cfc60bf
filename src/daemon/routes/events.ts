import type { FastifyInstance } from 'fastify';
import type { DaemonCore } from '../core.ts';

/**
 * GET /events (WebSocket): one JSON message per event, `{type: "instance", name, state, previous, reason, at}`
 * or `{type: "operation", operation, at}`. The first message is `{type: "hello", instances: [...]}` with every
 * instance's current state, so a client needs no separate list call to start from.
 */
export async function eventRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.get('/events', { websocket: true, schema: { tags: ['events'], summary: 'WebSocket: instance state changes and operation progress as JSON messages' } }, (socket, request) => {
    const instances = core.instances.repo.list().map((i) => ({ name: i.name, state: i.state, ...(i.stateReason === undefined ? {} : { reason: i.stateReason }) }));
    socket.send(JSON.stringify({ type: 'hello', instances, at: new Date().toISOString() }));
    const unsubscribe = core.events.subscribe((event) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(event));
    });
    socket.on('close', unsubscribe);
    socket.on('error', (e: Error) => request.log.info({ err: e }, 'events client went away'));
    socket.on('message', () => {}); // clients have nothing to say; messages are ignored
  });
}
