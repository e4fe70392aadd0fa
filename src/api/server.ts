import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { formatZodError, InputError } from '../schemas/fleet.schema';
import { ConflictError, NotFoundError, type DeploymentService } from '../service/deployments';
import type { Principal, Role, TokenStore } from './tokens';

const DeploymentId = z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'a deployment id');
const RollbackBody = z.strictObject({
  action: z.enum(['revert', 'revert-and-rollback']),
  revertMode: z.enum(['commit', 'pull-request']).optional(),
  reason: z.string().max(500).optional(),
});
const StartBody = z.strictObject({ fleet: z.unknown(), change: z.unknown() });

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export interface ApiOptions {
  service: DeploymentService;
  tokens: TokenStore;
  logger: Logger;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new InputError(formatZodError(r.error));
  return r.data;
}

/**
 * The HTTP API. Every route needs a bearer token; mutating routes need the operator role. The actor
 * recorded in the workflow's audit trail is the token's identity, never a field of the request.
 */
export function buildApi({ service, tokens, logger }: ApiOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger });

  const requireRole =
    (role: Role) =>
    async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const principal = tokens.authenticate(req.headers.authorization);
      if (!principal) {
        await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: 'a valid bearer token is required' });
        return;
      }
      if (role === 'operator' && principal.role !== 'operator') {
        await reply.code(403).send({ error: 'forbidden', message: `${principal.identity} has role ${principal.role}; this needs operator` });
        return;
      }
      req.principal = principal;
    };

  app.setErrorHandler(async (err, _req, reply) => {
    if (err instanceof InputError) return reply.code(400).send({ error: 'bad_request', message: err.message });
    if (err instanceof NotFoundError) return reply.code(404).send({ error: 'not_found', message: err.message });
    if (err instanceof ConflictError) return reply.code(409).send({ error: 'conflict', message: err.message });
    const e = err as { statusCode?: number; message: string };
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send({ error: 'bad_request', message: e.message });
    logger.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });

  app.get('/healthz', async () => ({ ok: true }));

  const id = (req: FastifyRequest): string => parseBody(DeploymentId, (req.params as { id?: string }).id);

  app.get('/api/deployments', { preHandler: requireRole('viewer') }, async () => ({ deployments: await service.list() }));
  app.get('/api/deployments/:id', { preHandler: requireRole('viewer') }, async (req) => service.status(id(req)));
  app.get('/api/deployments/:id/rollback-preview', { preHandler: requireRole('viewer') }, async (req) => service.preview(id(req)));
  app.get('/api/deployments/:id/audit', { preHandler: requireRole('viewer') }, async (req) => ({ audit: (await service.status(id(req))).audit }));

  app.post('/api/deployments', { preHandler: requireRole('operator') }, async (req, reply) => {
    const body = parseBody(StartBody, req.body);
    const started = await service.start(body, (req.principal as Principal).identity);
    return reply.code(201).send(started);
  });
  app.post('/api/deployments/:id/rollback', { preHandler: requireRole('operator') }, async (req) => {
    const body = parseBody(RollbackBody, req.body);
    return service.act(id(req), { ...body, requestedBy: (req.principal as Principal).identity });
  });
  app.post('/api/deployments/:id/dismiss', { preHandler: requireRole('operator') }, async (req) =>
    service.act(id(req), { action: 'dismiss', requestedBy: (req.principal as Principal).identity }),
  );
  return app;
}
