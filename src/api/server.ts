import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import type { AuditRecord, AuditStore } from '../audit/audit-store';
import type { UndoService } from '../service/undo';
import { dashboardAssets } from '../dashboard/assets';
import { formatZodError, InputError } from '../schemas/fleet.schema';
import { CONTROLS } from '../domain/controls';
import type { HostState } from '../domain/deployment';
import { DEFAULT_PAGE_SIZE, HOST_STATES, MAX_PAGE_SIZE } from '../domain/host-pages';
import { ConflictError, NotFoundError, UnavailableError, type DeploymentService } from '../service/deployments';
import { ProgressHub, type ProgressEvent } from './progress';
import type { ApiMetrics } from '../metrics';
import { registerWebhook, type WebhookOptions } from './webhook';
import type { Principal, Role, TokenStore } from './tokens';

const DeploymentId = z.string().regex(/^[A-Za-z0-9._-]{1,400}$/, 'a deployment id: letters, digits, ".", "_", "-" (max 400)');
const RollbackBody = z.strictObject({
  action: z.enum(['revert', 'revert-and-rollback']),
  revertMode: z.enum(['commit', 'pull-request']).optional(),
  reason: z.string().max(500).optional(),
});
const ControlBody = z.strictObject({
  control: z.enum(CONTROLS),
  host: z.string().min(1).max(100).optional(),
  reason: z.string().max(500).optional(),
});
const HostsQuery = z.strictObject({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  pageSize: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
  state: z.enum(HOST_STATES as [HostState, ...HostState[]]).optional(),
  wave: z.string().min(1).max(200).optional(),
});
/**
 * `limit`: the first hosts of the rollback preview only, with `hostCount` (all of them), for a display
 * at any fleet size. Without it the preview names every host (what `nixfleet rollback` confirms).
 */
const PreviewQuery = z.strictObject({ limit: z.coerce.number().int().min(0).max(MAX_PAGE_SIZE).optional() });
const ProgressQuery = z.strictObject({ since: z.coerce.number().int().min(0).optional(), view: z.enum(['status', 'summary']).optional() });
const DismissBody = z.strictObject({ reason: z.string().max(500).optional() });
const StartNowBody = z.strictObject({ reason: z.string().max(500).optional(), scope: z.enum(['this-wait', 'deployment']).optional() });
const StartBody = z.strictObject({ fleet: z.unknown(), change: z.unknown() });
/** closureDiff: also build each host's target and say what would change on it (nix store diff-closures). */
const DryRunBody = z.strictObject({ fleet: z.unknown(), change: z.unknown(), closureDiff: z.boolean().optional() });
const HostName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a host name');
const ChangesQuery = z.strictObject({ direction: z.enum(['deployed', 'rollback']).optional() });
const ListQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(200).optional() });
const AuditQuery = z.strictObject({
  deployment: DeploymentId.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

/** Messages a WebSocket client sends. */
const ClientMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('auth'), token: z.string().min(1).max(500) }),
  /** `since`: the last transition's `seq` the client has (a reconnect); it gets every one after it. */
  /** `view`: "status" (default) sends the whole status on every change; "summary" the bounded summary and only the hosts that changed. */
  z.strictObject({ type: z.literal('subscribe'), deploymentId: DeploymentId, since: z.number().int().min(0).optional(), view: z.enum(['status', 'summary']).optional() }),
  z.strictObject({ type: z.literal('unsubscribe'), deploymentId: DeploymentId }),
]);

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyInstance {
    /** The deployments with a running progress feed (one per deployment with subscribers). */
    progressPollers(): string[];
  }
}

export interface ApiOptions {
  service: DeploymentService;
  tokens: TokenStore;
  logger: Logger;
  /** The durable audit log; without one, the audit routes read the workflow's own trail. */
  audit?: AuditStore;
  /** How often a subscribed deployment's state is queried for WebSocket clients (default 250 ms). */
  progressPollMs?: number;
  /** How long a WebSocket client has to authenticate (default 10 s). */
  wsAuthTimeoutMs?: number;
  /** Rate limits; the defaults suit people at a dashboard and scripts of the CLI. */
  limits?: Partial<ApiLimits>;
  /**
   * Behind a reverse proxy: the proxy addresses (fastify's trustProxy: CIDRs, comma-separated) whose
   * X-Forwarded-For names the client, so failed authentications are counted per real client.
   */
  trustProxy?: string;
  /**
   * Prometheus metrics: requests by route and status are counted, and GET /metrics serves them
   * (a viewer token is required, like every other read: Prometheus sends it with `authorization`).
   */
  metrics?: ApiMetrics;
  /** POST /api/github/webhook: GitHub deliveries start deployments of approved flake.lock updates. */
  webhook?: WebhookOptions;
  /** Undo of a deployment that succeeded (needs the audit store, where its results are). */
  undo?: UndoService;
  /** The fleet routes' body limit in bytes, decompressed (start, dry run, undo; default BODY_LIMITS.start). */
  fleetBodyLimit?: number;
}

export interface RateLimit {
  max: number;
  windowMs: number;
}

export interface ApiLimits {
  /** Failed authentications per client address (bad or missing token, HTTP and WebSocket). */
  authFailures: RateLimit;
  /** Mutating requests (start, dry run, rollback, dismiss) per identity. */
  mutations: RateLimit;
}

export const DEFAULT_LIMITS: ApiLimits = {
  authFailures: { max: 20, windowMs: 5 * 60_000 },
  mutations: { max: 30, windowMs: 60_000 },
};

/**
 * Body limits per route, in bytes, of the body as parsed (after gzip decompression: a small compressed
 * body cannot expand past it). A fleet file is the largest thing a client sends: ~150 bytes a host, so
 * 16 MiB holds about 100,000 hosts; ApiOptions.fleetBodyLimit (NIXFLEET_API_FLEET_BODY_LIMIT) changes it.
 */
export const BODY_LIMITS = {
  start: 16 * 1024 * 1024,
  action: 16 * 1024,
} as const;

/** Request bodies may be sent with `content-encoding: gzip` (a large fleet file travels in a tenth of its size). */
export const REQUEST_ENCODINGS = ['gzip', 'identity'] as const;

/**
 * The dashboard's Content-Security-Policy: its own files only (no inline script or style, no eval),
 * fetch and WebSocket to this origin, no framing, no forms posted elsewhere.
 */
export const DASHBOARD_CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  connectSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  objectSrc: ["'none'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
};

function parse<T>(schema: z.ZodType<T>, value: unknown, root: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new InputError(formatZodError(r.error, root));
  return r.data;
}

/** The workflow's own trail in the shape of the durable log (API without an audit store). */
function trailAsRecords(id: string, s: Awaited<ReturnType<DeploymentService['status']>>): AuditRecord[] {
  return s.audit.map((e, i) => ({ ...e, deploymentId: id, seq: i + 1, repository: `${s.repository.owner}/${s.repository.name}` }));
}

/**
 * The HTTP API, the WebSocket progress feed and the dashboard page. Every /api route needs a bearer
 * token; mutating routes need the operator role. The actor recorded in the workflow's audit trail is
 * the token's identity, never a field of the request.
 */
export function buildApi({ service, tokens, logger, audit, progressPollMs, wsAuthTimeoutMs, limits, trustProxy, metrics, webhook, undo, fleetBodyLimit }: ApiOptions): FastifyInstance {
  const lim: ApiLimits = { ...DEFAULT_LIMITS, ...limits };
  const fleetLimit = fleetBodyLimit ?? BODY_LIMITS.start;
  // Request logs carry the method and the path, never the Authorization header.
  // routerOptions.maxParamLength (a top-level option before Fastify 5, FSTDEP022): Fastify refuses a
  // path parameter over 100 characters by default, and a deployment id is up to 360 (a long
  // repository name with escapes): the dashboard then showed nothing.
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, bodyLimit: fleetLimit, routerOptions: { maxParamLength: 1000 }, ...(trustProxy ? { trustProxy } : {}) });
  // Security headers on every response (the dashboard's pages and the API's JSON alike).
  void app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: DASHBOARD_CSP },
    // The API may be reached over plain HTTP on a trusted network; HTTPS is the proxy's business.
    strictTransportSecurity: false,
  });
  // Counters in memory, per process: limits are a brake on one client, not a quota across replicas.
  void app.register(rateLimit, { global: false });
  type Limiter = ReturnType<FastifyInstance['createRateLimit']>;
  let authLimiter: Limiter | undefined;
  let mutationLimiter: Limiter | undefined;
  // Made on first use: the plugin's decorator exists once the app is ready.
  const authFailures = (): Limiter =>
    (authLimiter ??= app.createRateLimit({ max: lim.authFailures.max, timeWindow: lim.authFailures.windowMs, keyGenerator: (req) => `auth:${req.ip}` }));
  const mutations = (): Limiter =>
    (mutationLimiter ??= app.createRateLimit({
      max: lim.mutations.max,
      timeWindow: lim.mutations.windowMs,
      keyGenerator: (req) => `mutate:${req.principal?.identity ?? req.ip}`,
    }));
  // A peek (increment: false) at a counter that has reached its maximum: the next one would exceed it.
  const spent = (r: Awaited<ReturnType<Limiter>>): r is Extract<Awaited<ReturnType<Limiter>>, { isAllowed: false }> => !r.isAllowed && r.remaining === 0;
  const tooMany = async (reply: FastifyReply, ttlMs: number, what: string): Promise<void> => {
    const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
    await reply.code(429).header('retry-after', String(seconds)).send({ error: 'too_many_requests', message: `${what}; retry in ${seconds} s` });
  };
  const hub = new ProgressHub({
    progress: (id, since) => service.progress(id, since),
    summary: (id, since) => service.progressSummary(id, since),
    closed: (id) => service.closedAs(id),
    pollMs: progressPollMs ?? 250,
    onError: (id, err) => logger.debug({ deploymentId: id, err }, 'progress poll failed'),
  });

  const requireRole =
    (role: Role) =>
    async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
      // A client that keeps sending bad tokens is refused, whatever it sends next, until its window ends.
      const failures = await authFailures()(req, { increment: false });
      if (spent(failures)) return tooMany(reply, failures.ttl, 'too many failed authentications from this address');
      const principal = tokens.authenticate(req.headers.authorization);
      if (!principal) {
        await authFailures()(req);
        await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: 'a valid bearer token is required' });
        return;
      }
      if (role === 'operator' && principal.role !== 'operator') {
        await reply.code(403).send({ error: 'forbidden', message: `${principal.identity} has role ${principal.role}; this needs operator` });
        return;
      }
      req.principal = principal;
      if (role === 'operator') {
        const used = await mutations()(req);
        if (!used.isAllowed && used.isExceeded) return tooMany(reply, used.ttl, `${principal.identity} sent more than ${lim.mutations.max} changes in ${Math.round(lim.mutations.windowMs / 1000)} s`);
      }
    };
  const actor = (req: FastifyRequest): string => (req.principal as Principal).identity;

  app.setErrorHandler(async (err, req, reply) => {
    if (err instanceof InputError) return reply.code(400).send({ error: 'bad_request', message: err.message });
    if (err instanceof NotFoundError) return reply.code(404).send({ error: 'not_found', message: err.message });
    if (err instanceof ConflictError) return reply.code(409).send({ error: 'conflict', message: err.message });
    if (err instanceof UnavailableError) return reply.code(503).header('retry-after', String(err.retryAfterSeconds)).send({ error: 'unavailable', message: err.message });
    const e = err as { statusCode?: number; message: string; code?: string };
    // A body over the route's limit (fastify stops reading it): name the limit.
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const limit = req.routeOptions.bodyLimit ?? fleetLimit;
      const fleet = limit === fleetLimit && limit > BODY_LIMITS.action ? ` (${(limit / 1024 / 1024).toFixed(1)} MiB once decompressed, a fleet file's limit; the API's NIXFLEET_API_FLEET_BODY_LIMIT raises it)` : '';
      return reply.code(413).send({ error: 'payload_too_large', message: `(input): the body is larger than this route's limit of ${limit} bytes${fleet}` });
    }
    if (e.code === 'FST_ERR_UNSUPPORTED_ENCODING') {
      return reply.code(415).send({ error: 'unsupported_media_type', message: `content-encoding: one of ${REQUEST_ENCODINGS.join(', ')}; got ${JSON.stringify(req.headers['content-encoding'])}` });
    }
    if (e.code === 'FST_ERR_BAD_GZIP') {
      return reply.code(400).send({ error: 'bad_request', message: `(input): the body is not valid gzip (content-encoding: gzip): ${e.message}` });
    }
    // fastify's own body checks: not JSON, or a __proto__ / constructor.prototype key (refused as
    // prototype poisoning). Say so in the same "field: problem" shape as every other 400.
    if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return reply.code(400).send({ error: 'bad_request', message: '(input): the body must be a JSON object without __proto__ or constructor.prototype keys' });
    }
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send({ error: 'bad_request', message: e.message });
    logger.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler(async (req, reply) => reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }));
  app.addHook('onClose', async () => hub.close());
  // gzip request bodies, decompressed as they are read: the route's limit counts the decompressed bytes
  // (fastify counts what this stream gives), the content-length the compressed ones. Not for GitHub's
  // webhook, whose signature is over the bytes as sent.
  app.addHook('preParsing', async (req, _reply, payload) => {
    const enc = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (enc === 'identity' || req.url.startsWith('/api/github/')) return payload;
    if (enc !== 'gzip') throw Object.assign(new Error('unsupported content-encoding'), { code: 'FST_ERR_UNSUPPORTED_ENCODING' });
    const gunzip = createGunzip();
    const out = gunzip as typeof gunzip & { receivedEncodedLength: number };
    out.receivedEncodedLength = 0;
    payload.on('data', (chunk: Buffer) => (out.receivedEncodedLength += chunk.length));
    // Marked for the error handler (listeners share the error object; fastify's own comes after this one).
    gunzip.on('error', (err) => void Object.assign(err, { code: 'FST_ERR_BAD_GZIP', statusCode: 400 }));
    payload.pipe(gunzip);
    return out;
  });

  app.get('/healthz', async () => ({ ok: true }));

  if (metrics) {
    // The route pattern (never the URL: ids would make a series per deployment), 'unmatched' for 404s.
    app.addHook('onResponse', async (req, reply) => {
      metrics.observe(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime / 1000);
    });
    app.get('/metrics', { preHandler: requireRole('viewer') }, async (_req, reply) => {
      const text = await metrics.registry.metrics();
      return reply.header('content-type', metrics.registry.contentType).send(text);
    });
  }

  const id = (req: FastifyRequest): string => parse(DeploymentId, (req.params as { id?: string }).id, 'id');

  // --- reading -------------------------------------------------------------------------------------
  app.get('/api/whoami', { preHandler: requireRole('viewer') }, async (req) => req.principal);
  app.get('/api/deployments', { preHandler: requireRole('viewer') }, async (req) => {
    const q = parse(ListQuery, req.query, 'query');
    return { deployments: await service.list(q.limit ?? 50) };
  });
  app.get('/api/deployments/:id', { preHandler: requireRole('viewer') }, async (req) => service.status(id(req)));
  // At any fleet size: the bounded summary, and the hosts a page at a time (?page=&pageSize=&state=&wave=).
  app.get('/api/deployments/:id/summary', { preHandler: requireRole('viewer') }, async (req) => service.summary(id(req)));
  app.get('/api/deployments/:id/hosts', { preHandler: requireRole('viewer') }, async (req) => {
    const dep = id(req);
    const q = parse(HostsQuery, req.query, 'query');
    return service.hosts(dep, { page: q.page, pageSize: q.pageSize, ...(q.state ? { state: q.state } : {}), ...(q.wave ? { wave: q.wave } : {}) });
  });
  // The live feed without a WebSocket: the transitions after `since`, the latest cursor and the status.
  app.get('/api/deployments/:id/progress', { preHandler: requireRole('viewer') }, async (req) => {
    const dep = id(req);
    const q = parse(ProgressQuery, req.query, 'query');
    if (q.view === 'summary') {
      // At any fleet size: the summary in place of the status (the running child's hosts are counted in it).
      const { live: _live, ...page } = await service.progressSummary(dep, q.since ?? null);
      return page;
    }
    return service.progress(dep, q.since ?? null);
  });
  app.get('/api/deployments/:id/hosts/:host/changes', { preHandler: requireRole('viewer') }, async (req) => {
    const host = parse(HostName, (req.params as { host?: string }).host, 'host');
    const q = parse(ChangesQuery, req.query ?? {}, '');
    return service.hostChanges(id(req), host, q.direction);
  });
  app.get('/api/deployments/:id/controls', { preHandler: requireRole('viewer') }, async (req) => service.controls(id(req)));
  app.get('/api/deployments/:id/rollback-preview', { preHandler: requireRole('viewer') }, async (req) => {
    const dep = id(req);
    const q = parse(PreviewQuery, req.query ?? {}, 'query');
    // The limit goes into the workflow's query: the worker sends only the hosts asked for.
    return service.preview(dep, q.limit);
  });
  app.get('/api/deployments/:id/audit', { preHandler: requireRole('viewer') }, async (req) => {
    const dep = id(req);
    if (audit) {
      const records = await audit.list({ deploymentId: dep });
      // The log outlives Temporal: entries are served even when the workflow is long gone.
      if (records.length === 0) await service.status(dep);
      return { audit: records };
    }
    return { audit: trailAsRecords(dep, await service.status(dep)) };
  });
  app.get('/api/audit', { preHandler: requireRole('viewer') }, async (req) => {
    const q = parse(AuditQuery, req.query, 'query');
    if (!audit) throw new ConflictError('no audit store is configured on this API (NIXFLEET_AUDIT_URL or NIXFLEET_AUDIT_DB)');
    return { audit: await audit.list({ ...(q.deployment ? { deploymentId: q.deployment } : {}), ...(q.limit ? { limit: q.limit } : {}) }) };
  });

  // --- acting --------------------------------------------------------------------------------------
  app.post('/api/deployments', { preHandler: requireRole('operator'), bodyLimit: fleetLimit }, async (req, reply) => {
    const body = parse(StartBody, req.body ?? {}, '');
    const started = await service.start(body, actor(req));
    return reply.code(201).send(started);
  });
  // A dry run reaches every host over SSH to read its generation: operators only.
  app.post('/api/deployments/dry-run', { preHandler: requireRole('operator'), bodyLimit: fleetLimit }, async (req) => {
    const body = parse(DryRunBody, req.body ?? {}, '');
    return service.dryRun(body, actor(req));
  });
  app.post('/api/deployments/:id/rollback', { preHandler: requireRole('operator'), bodyLimit: BODY_LIMITS.action }, async (req) => {
    const dep = id(req);
    const body = parse(RollbackBody, req.body ?? {}, '');
    return service.act(dep, { ...body, requestedBy: actor(req) });
  });
  // Operator controls (pause, resume, abort, skip, retry-failed, promote): 409 with the reason when one does not apply.
  app.post('/api/deployments/:id/control', { preHandler: requireRole('operator'), bodyLimit: BODY_LIMITS.action }, async (req) => {
    const dep = id(req);
    const body = parse(ControlBody, req.body ?? {}, '');
    return service.control(dep, { ...body, requestedBy: actor(req) });
  });
  app.post('/api/deployments/:id/dismiss', { preHandler: requireRole('operator'), bodyLimit: BODY_LIMITS.action }, async (req) => {
    const dep = id(req);
    const body = parse(DismissBody, req.body ?? {}, '');
    return service.act(dep, { action: 'dismiss', requestedBy: actor(req), ...(body.reason ? { reason: body.reason } : {}) });
  });

  // --- undo a deployment that succeeded (src/service/undo.ts): start (the plan to confirm), read, confirm
  const needUndo = (): UndoService => {
    if (!undo) throw new ConflictError('undo needs the audit store (NIXFLEET_AUDIT_URL or NIXFLEET_AUDIT_DB), where deployments keep their results');
    return undo;
  };
  app.post('/api/deployments/:id/undo', { preHandler: requireRole('operator'), bodyLimit: fleetLimit }, async (req, reply) => reply.code(201).send(await needUndo().start(id(req), req.body ?? {}, actor(req))));
  app.get('/api/undo/:id', { preHandler: requireRole('viewer') }, async (req) => needUndo().status(id(req)));
  app.post('/api/undo/:id/confirm', { preHandler: requireRole('operator'), bodyLimit: BODY_LIMITS.action }, async (req) => needUndo().confirm(id(req), req.body ?? {}, actor(req)));
  // A deployment waiting for its maintenance window starts now (refused with 409 and the reason when nothing waits).
  app.post('/api/deployments/:id/start-now', { preHandler: requireRole('operator'), bodyLimit: BODY_LIMITS.action }, async (req) => {
    const dep = id(req);
    const body = parse(StartNowBody, req.body ?? {}, '');
    return service.startNow(dep, { requestedBy: actor(req), ...(body.reason ? { reason: body.reason } : {}), ...(body.scope ? { scope: body.scope } : {}) });
  });

  // --- from GitHub: signed webhook deliveries (no bearer token: the HMAC is the authentication) ----
  if (webhook) registerWebhook(app, { options: webhook, service, logger, count: (r) => metrics?.webhook(r) });

  // --- live progress -------------------------------------------------------------------------------
  // Protocol: the first message is {"type":"auth","token":"…"} (browsers cannot set headers on a
  // WebSocket, and a token in the URL would end up in access logs); a client that can send an
  // Authorization: Bearer header is authenticated at once. Then {"type":"subscribe","deploymentId"}.
  void app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  void app.register(async (scope) => {
    // An address over its failed-authentication limit is turned away before the upgrade.
    scope.addHook('preValidation', async (req, reply) => {
      const failures = await authFailures()(req, { increment: false });
      if (spent(failures)) return tooMany(reply, failures.ttl, 'too many failed authentications from this address');
    });
    scope.get('/api/ws', { websocket: true }, (socket: WebSocket, req: FastifyRequest) => {
      let principal = tokens.authenticate(req.headers.authorization);
      const failedAuth = (): void => void authFailures()(req).catch((err: unknown) => logger.debug({ err }, 'counting a failed authentication failed'));
      if (!principal && req.headers.authorization !== undefined) failedAuth();
      const subs = new Map<string, () => void>();
      const send = (m: ProgressEvent | { type: 'ready'; identity: string; role: Role }): void => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
      };
      const authTimer = principal
        ? undefined
        : setTimeout(() => socket.close(4401, 'authenticate first: {"type":"auth","token":"…"}'), wsAuthTimeoutMs ?? 10_000);
      if (principal) send({ type: 'ready', identity: principal.identity, role: principal.role });
      socket.on('message', (data: Buffer) => {
        let msg: z.infer<typeof ClientMessage>;
        try {
          msg = parse(ClientMessage, JSON.parse(data.toString('utf8')), 'message');
        } catch (err) {
          send({ type: 'error', status: 400, message: err instanceof InputError ? err.message : 'message: not JSON' });
          return;
        }
        if (msg.type === 'auth') {
          principal = tokens.authenticate(`Bearer ${msg.token}`);
          if (!principal) {
            failedAuth();
            socket.close(4401, 'invalid token');
            return;
          }
          clearTimeout(authTimer);
          send({ type: 'ready', identity: principal.identity, role: principal.role });
          return;
        }
        if (!principal) {
          socket.close(4401, 'authenticate first: {"type":"auth","token":"…"}');
          return;
        }
        if (msg.type === 'subscribe') {
          if (!subs.has(msg.deploymentId)) subs.set(msg.deploymentId, hub.subscribe(msg.deploymentId, send, msg.since, msg.view));
        } else {
          subs.get(msg.deploymentId)?.();
          subs.delete(msg.deploymentId);
        }
      });
      socket.on('close', () => {
        clearTimeout(authTimer);
        for (const off of subs.values()) off();
        subs.clear();
      });
    });
  });

  // --- the dashboard -------------------------------------------------------------------------------
  const assets = dashboardAssets();
  app.get('/', async (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
  app.get('/dashboard', async (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard/*', async (req, reply) => {
    const name = (req.params as { '*': string })['*'] || 'index.html';
    const asset = assets.get(name);
    if (!asset) return reply.code(404).send({ error: 'not_found', message: `no dashboard file ${name}` });
    // Content-Security-Policy, nosniff, no-referrer and the rest come from helmet (DASHBOARD_CSP).
    return reply.header('content-type', asset.type).header('cache-control', 'no-cache').send(asset.body);
  });

  app.decorate('progressPollers', () => hub.active);
  return app;
}
