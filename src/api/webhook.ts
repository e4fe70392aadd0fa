/**
 * POST /api/github/webhook: GitHub's `pull_request` and `pull_request_review` deliveries start the
 * deployment of an approved (or labelled) flake.lock update, exactly once.
 *
 * Order, so that nothing from an unverified sender is ever parsed: the body is read raw (up to
 * `maxBytes`: larger → 413), its X-Hub-Signature-256 checked against the secret (HMAC-SHA256,
 * compared in constant time: missing → 401 unsigned, wrong → 401 bad-signature), then its
 * X-GitHub-Delivery GUID (seen before → 409 replayed; GitHub keeps the GUID on a redelivery), and
 * only then is it parsed as JSON and decided on (src/domain/webhook.ts). A delivery whose handling
 * failed (Temporal or GitHub unreachable) forgets its GUID, so that a redelivery can try again; the
 * deployment's deterministic id keeps the start single anyway. Every outcome is counted in
 * nixfleet_api_webhook_deliveries_total.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Octokit } from '@octokit/rest';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { decideWebhook, type AutoDeployFleet, type WebhookPayload } from '../domain/webhook';
import type { WebhookResult } from '../metrics';
import type { FleetFile } from '../schemas/fleet.schema';
import { ConflictError, type DeploymentService } from '../service/deployments';

export interface WebhookOptions {
  /** The webhook's secret (GitHub: Settings → Webhooks → Secret). */
  secret: string;
  /** The fleets that may start from GitHub (each with `autoDeploy`). */
  fleets: FleetFile[];
  /** Reads the pull request's files (does it change flake.lock?). */
  github: Octokit;
  /** Largest delivery accepted, in bytes (default 1 MiB; GitHub caps payloads at 25 MB). */
  maxBytes?: number;
  /** How many delivery GUIDs are remembered against replays (default 10,000). */
  rememberDeliveries?: number;
}

export const WEBHOOK_ROUTE = '/api/github/webhook';
export const DEFAULT_WEBHOOK_MAX_BYTES = 1024 * 1024;

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;
const DELIVERY = /^[0-9A-Za-z-]{1,100}$/;

/** Whether `header` is `sha256=` + the hex HMAC-SHA256 of `body` under `secret`; constant time in the digest. */
export function verifyWebhookSignature(secret: string, body: Buffer, header: string | undefined): boolean {
  const m = header === undefined ? null : SIGNATURE.exec(header);
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(m[1] as string, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Does the pull request change flake.lock? (GitHub lists at most 3000 files, 100 a page.) */
async function changesFlakeLock(gh: Octokit, owner: string, repo: string, number: number): Promise<boolean> {
  for (let page = 1; page <= 30; page++) {
    const { data } = await gh.rest.pulls.listFiles({ owner, repo, pull_number: number, per_page: 100, page });
    if (data.some((f) => f.filename === 'flake.lock' || f.previous_filename === 'flake.lock')) return true;
    if (data.length < 100) return false;
  }
  return false;
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
};

export function registerWebhook(app: FastifyInstance, deps: { options: WebhookOptions; service: DeploymentService; logger: Logger; count: (r: WebhookResult) => void }): void {
  const { options, service, logger, count } = deps;
  if (options.secret.length < 16) throw new Error('the webhook secret must be at least 16 characters');
  const maxBytes = options.maxBytes ?? DEFAULT_WEBHOOK_MAX_BYTES;
  const remember = options.rememberDeliveries ?? 10_000;
  const seen = new Set<string>();
  const fleets: AutoDeployFleet[] = options.fleets.map((f) => ({ owner: f.repository.owner, name: f.repository.name, branch: f.repository.branch, ...(f.autoDeploy ? { autoDeploy: f.autoDeploy } : {}) }));

  const answer = async (reply: FastifyReply, result: WebhookResult, status: number, body: Record<string, unknown>): Promise<void> => {
    count(result);
    await reply.code(status).send({ result, ...body });
  };

  void app.register(async (scope) => {
    // The body stays raw bytes until its signature is checked: no JSON parser runs on it before.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxBytes }, (_req, body, done) => done(null, body));
    scope.setErrorHandler(async (err, _req, reply) => {
      const e = err as { code?: string; statusCode?: number };
      if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return answer(reply, 'oversized', 413, { message: `the delivery is larger than ${maxBytes} bytes` });
      if (e.statusCode !== undefined && e.statusCode < 500) return answer(reply, 'invalid', 400, { message: 'the delivery could not be read' });
      logger.error({ err }, 'webhook delivery failed');
      return answer(reply, 'error', 500, { message: 'internal error' });
    });

    scope.post(WEBHOOK_ROUTE, { bodyLimit: maxBytes }, async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const signature = header(req, 'x-hub-signature-256');
      if (signature === undefined) return answer(reply, 'unsigned', 401, { message: 'X-Hub-Signature-256 is required' });
      if (!verifyWebhookSignature(options.secret, raw, signature)) return answer(reply, 'bad-signature', 401, { message: 'X-Hub-Signature-256 does not match the body' });
      const guid = header(req, 'x-github-delivery');
      const event = header(req, 'x-github-event');
      if (guid === undefined || !DELIVERY.test(guid) || event === undefined || !/^[a-z_]{1,50}$/.test(event)) {
        return answer(reply, 'invalid', 400, { message: 'X-GitHub-Delivery and X-GitHub-Event are required' });
      }
      if (seen.has(guid)) return answer(reply, 'replayed', 409, { message: `delivery ${guid} was received before` });
      seen.add(guid);
      if (seen.size > remember) seen.delete(seen.values().next().value as string);
      try {
        if (!/^application\/json\b/i.test(header(req, 'content-type') ?? '')) return await answer(reply, 'invalid', 415, { message: 'the webhook must send application/json' });
        let payload: WebhookPayload;
        try {
          payload = JSON.parse(raw.toString('utf8')) as WebhookPayload;
        } catch {
          return await answer(reply, 'invalid', 400, { message: 'the delivery is not JSON' });
        }
        if (typeof payload !== 'object' || payload === null) return await answer(reply, 'invalid', 400, { message: 'the delivery is not a JSON object' });
        const decision = decideWebhook(event, payload, fleets);
        const log = logger.child({ delivery: guid, event });
        if (decision.kind === 'ignore') {
          log.info({ reason: decision.reason }, 'webhook delivery ignored');
          return await answer(reply, 'ignored', 200, { message: decision.reason });
        }
        const fleet = options.fleets[decision.fleet] as FleetFile;
        const { owner, name } = fleet.repository;
        if (!(await changesFlakeLock(options.github, owner, name, decision.pullRequest))) {
          return await answer(reply, 'ignored', 200, { message: `pull request #${decision.pullRequest} does not change flake.lock` });
        }
        const r = await service.startOnce(fleet, { pullRequest: decision.pullRequest, expectedHeadSha: decision.headSha }, decision.actor);
        log.info({ deploymentId: r.deploymentId, started: r.started, trigger: decision.trigger }, 'webhook delivery: deployment');
        return await (r.started
          ? answer(reply, 'started', 202, { deploymentId: r.deploymentId, trigger: decision.trigger })
          : answer(reply, 'already-started', 200, { deploymentId: r.deploymentId }));
      } catch (err) {
        // Not handled: a redelivery may try again.
        seen.delete(guid);
        if (err instanceof ConflictError) return answer(reply, 'conflict', 409, { message: err.message });
        throw err;
      }
    });
  });
}
