import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { z } from 'zod';
import { openAuditStore } from '../audit/open-audit-store';
import { AuditEnv, auditTarget, githubAuth, readEnv, resolveTemporal, TemporalEnv } from '../config';
import { createGitHub } from '../github';
import { parseFleetFile } from '../schemas/fleet.schema';
import { DEFAULT_WEBHOOK_MAX_BYTES, type WebhookOptions } from './webhook';
import { createLogger } from '../logger';
import { createApiMetrics } from '../metrics';
import { DeploymentService } from '../service/deployments';
import { UndoService } from '../service/undo';
import { BODY_LIMITS, buildApi, DEFAULT_LIMITS } from './server';
import { TokenStore } from './tokens';

const ApiEnv = TemporalEnv.extend(AuditEnv.shape).extend({
  NIXFLEET_API_HOST: z.string().default('127.0.0.1'),
  NIXFLEET_API_PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  NIXFLEET_API_TOKENS_FILE: z.string().min(1, 'a JSON file of {"tokens":[{"token","identity","role"}]}'),
  NIXFLEET_SEARCH_ATTRIBUTES: z.enum(['0', '1']).default('1'),
  NIXFLEET_PROGRESS_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(250),
  /** The largest fleet file (start, dry run, undo) in bytes once decompressed (default 16 MiB: ~100,000 hosts). */
  NIXFLEET_API_FLEET_BODY_LIMIT: z.coerce.number().int().min(64 * 1024).max(512 * 1024 * 1024).default(BODY_LIMITS.start),
  /** Failed authentications one client address may make in 5 minutes before it gets 429. */
  NIXFLEET_API_MAX_AUTH_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_LIMITS.authFailures.max),
  /** Changes (start, dry run, rollback, dismiss) one identity may send in a minute. */
  NIXFLEET_API_MAX_CHANGES: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_LIMITS.mutations.max),
  /** The reverse proxy's address(es) (CIDR, comma-separated) whose X-Forwarded-For is believed. */
  NIXFLEET_API_TRUST_PROXY: z.string().optional(),
  /**
   * POST /api/github/webhook (off unless set): the webhook's secret (a file), the fleet files that may
   * start from GitHub (comma-separated paths, each with autoDeploy), and GitHub credentials to read a
   * pull request's files (GITHUB_API_URL, GITHUB_TOKEN or GITHUB_APP_*, as for the worker).
   */
  NIXFLEET_WEBHOOK_SECRET_FILE: z.string().min(1).optional(),
  NIXFLEET_WEBHOOK_FLEETS: z.string().min(1).optional(),
  /** Fleet files the API knows (comma-separated paths), for an undo asked without one (the dashboard); the webhook's fleets count too. */
  NIXFLEET_FLEETS: z.string().min(1).optional(),
  NIXFLEET_WEBHOOK_MAX_BYTES: z.coerce.number().int().min(1024).max(25 * 1024 * 1024).default(DEFAULT_WEBHOOK_MAX_BYTES),
  GITHUB_API_URL: z.string().url().default('https://api.github.com'),
  GITHUB_TOKEN: z.string().min(1).optional(),
  GITHUB_APP_ID: z.string().regex(/^[1-9][0-9]{0,15}$/).optional(),
  GITHUB_APP_PRIVATE_KEY_FILE: z.string().min(1).optional(),
  GITHUB_APP_INSTALLATION_ID: z.string().regex(/^[1-9][0-9]{0,15}$/).optional(),
});

/** The webhook route's options from the environment; undefined when NIXFLEET_WEBHOOK_SECRET_FILE is unset. */
function webhookOptions(env: z.infer<typeof ApiEnv>, logger: ReturnType<typeof createLogger>): WebhookOptions | undefined {
  if (env.NIXFLEET_WEBHOOK_SECRET_FILE === undefined) return undefined;
  if (env.NIXFLEET_WEBHOOK_FLEETS === undefined) throw new Error('configuration error: NIXFLEET_WEBHOOK_FLEETS: the fleet files (comma-separated) that may start from GitHub');
  const secret = readFileSync(env.NIXFLEET_WEBHOOK_SECRET_FILE, 'utf8').trim();
  const fleets = env.NIXFLEET_WEBHOOK_FLEETS.split(',').map((p) => p.trim()).filter(Boolean).map((p) => parseFleetFile(readFileSync(p, 'utf8'), p));
  return { secret, fleets, github: createGitHub({ baseUrl: env.GITHUB_API_URL, ...githubAuth(env), log: logger }), maxBytes: env.NIXFLEET_WEBHOOK_MAX_BYTES };
}

async function main(): Promise<void> {
  const env = readEnv(ApiEnv);
  const logger = createLogger('nixfleet-api');
  const temporal = resolveTemporal(env, (message) => logger.warn(message));
  const connection = await Connection.connect(temporal.connection);
  const client = new Client({ connection, namespace: temporal.namespace });
  const service = new DeploymentService(client, env.TEMPORAL_TASK_QUEUE, { searchAttributes: env.NIXFLEET_SEARCH_ATTRIBUTES === '1' });
  // NIXFLEET_AUDIT_URL (postgres://… or sqlite:PATH), else the SQLite file NIXFLEET_AUDIT_DB: the worker's.
  const audit = await openAuditStore(auditTarget(env));
  const webhook = webhookOptions(env, logger);
  const app = buildApi({
    service,
    tokens: TokenStore.fromFile(env.NIXFLEET_API_TOKENS_FILE),
    logger,
    audit,
    undo: new UndoService(client, env.TEMPORAL_TASK_QUEUE, audit, [
      ...(env.NIXFLEET_FLEETS ?? '').split(',').map((p) => p.trim()).filter(Boolean).map((p) => parseFleetFile(readFileSync(p, 'utf8'), p)),
      ...(webhook?.fleets ?? []),
    ]),
    progressPollMs: env.NIXFLEET_PROGRESS_POLL_MS,
    fleetBodyLimit: env.NIXFLEET_API_FLEET_BODY_LIMIT,
    limits: {
      authFailures: { ...DEFAULT_LIMITS.authFailures, max: env.NIXFLEET_API_MAX_AUTH_FAILURES },
      mutations: { ...DEFAULT_LIMITS.mutations, max: env.NIXFLEET_API_MAX_CHANGES },
    },
    ...(env.NIXFLEET_API_TRUST_PROXY ? { trustProxy: env.NIXFLEET_API_TRUST_PROXY } : {}),
    // GET /metrics on the API's own listener, for a viewer token.
    metrics: createApiMetrics(),
    ...(webhook ? { webhook } : {}),
  });
  await app.listen({ host: env.NIXFLEET_API_HOST, port: env.NIXFLEET_API_PORT });
  logger.info({ url: `http://${env.NIXFLEET_API_HOST}:${env.NIXFLEET_API_PORT}/dashboard/`, audit: audit.location }, 'API and dashboard listening');
  const stop = async (): Promise<void> => {
    await app.close();
    await audit.close();
    await connection.close();
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
