import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { HTTP_STATUS, toVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import { NAME_PATTERN, type ErrorBodyType } from '../api/schemas.ts';
import { validateName } from '../lib/names.ts';

export function errorBody(error: VirtnodeError): ErrorBodyType {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.hint === undefined ? {} : { hint: error.hint }),
      ...(error.field === undefined ? {} : { field: error.field }),
    },
  };
}

/** Fastify's own errors (validation, body too large, bad JSON) in virtnode's one error shape. */
function fromFramework(e: FastifyError, bodyLimit: number): { status: number; error: VirtnodeError } {
  if (e.validation !== undefined) {
    const first = e.validation[0];
    const where = `${e.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
    let message = first?.message ?? e.message;
    if (first?.keyword === 'pattern' && (first.params as { pattern?: string }).pattern === NAME_PATTERN) {
      // The CLI's message for a bad name, so both fronts say the same thing.
      const field = (first.instancePath.split('/').pop() || 'name');
      try {
        validateName(field, (first as { data?: unknown }).data);
      } catch (nameError) {
        if (nameError instanceof VirtnodeError) return { status: 400, error: nameError };
      }
    }
    if (first?.keyword === 'additionalProperties') message = `unknown field "${(first.params as { additionalProperty: string }).additionalProperty}"`;
    if (first?.keyword === 'enum') message = `"${String((first as { data?: unknown }).data)}" is not valid: use ${((first.params as { allowedValues: unknown[] }).allowedValues ?? []).join(', ')}`;
    if (first?.keyword === 'minimum' || first?.keyword === 'maximum') {
      // Both ends of the range, not only the one crossed.
      const { minimum, maximum } = (first as { parentSchema?: { minimum?: number; maximum?: number } }).parentSchema ?? {};
      if (minimum !== undefined && maximum !== undefined) message = `${String((first as { data?: unknown }).data)} is out of range: use ${minimum} to ${maximum}`;
    }
    if (first?.keyword === 'const' || first?.keyword === 'anyOf') message = `${message}: see the OpenAPI document at /openapi.json`;
    return { status: 400, error: new VirtnodeError('INVALID', `${where}: ${message}`, { field: where }) };
  }
  // The router's own: their messages quote the whole path.
  if (e.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return { status: 414, error: new VirtnodeError('INVALID', 'a path parameter is longer than 253 characters', { hint: 'names are DNS labels: at most 63 characters' }) };
  }
  if (e.code === 'FST_ERR_BAD_URL') return { status: 400, error: new VirtnodeError('INVALID', 'the URL path is not valid: a %-escape is malformed') };
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return { status: 415, error: new VirtnodeError('INVALID', 'the request body must be JSON', { hint: 'send it with content-type: application/json' }) };
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 413, error: new VirtnodeError('INVALID', `the request body is larger than ${bodyLimit} bytes`, { hint: 'send smaller user-data or files by path' }) };
  }
  const status = e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
  if (status === 500) return { status, error: toVirtnodeError(e) };
  return { status, error: new VirtnodeError(status === 404 ? 'NOT_FOUND' : 'INVALID', e.message) };
}

export function errorHandler(bodyLimit: number) {
  return (e: FastifyError | VirtnodeError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, error } = e instanceof VirtnodeError ? { status: HTTP_STATUS[e.code], error: e } : fromFramework(e, bodyLimit);
    if (status >= 500) request.log.error({ err: e, code: error.code }, error.message);
    else request.log.info({ code: error.code }, error.message);
    void reply.status(status).send(errorBody(error));
  };
}
