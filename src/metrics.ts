/**
 * The product's Prometheus metrics (prom-client). The worker counts and times its activities (host
 * steps, the merge, rollbacks, reverts, audit entries) through an activity interceptor and reports
 * its open SSH connections; the API counts its requests by route and status. Temporal's own runtime
 * metrics come from the SDK core on an address of their own (see README, "Metrics").
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure, CancelledFailure, type Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Activities that act on one host; their first argument carries the host (or is it). */
const HOST_STEPS = new Set(['recordGeneration', 'releaseHost', 'switchHost', 'buildHost', 'checkHealth', 'confirmHost', 'verifyHost', 'rollbackHost', 'describeHost', 'readHostGeneration']);
const STEP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** What an activity attempt came to: `ok`, `cancelled`, the ApplicationFailure type, or `error`. */
export function resultOf(err: unknown): string {
  if (err === undefined) return 'ok';
  if (err instanceof CancelledFailure) return 'cancelled';
  if (err instanceof ApplicationFailure) return err.type ?? 'error';
  return 'error';
}

function hostKindOf(arg: unknown): string {
  const a = arg as { host?: { kind?: unknown }; kind?: unknown } | undefined;
  const kind = a?.host?.kind ?? a?.kind;
  return typeof kind === 'string' && /^[a-z-]{1,32}$/.test(kind) ? kind : 'unknown';
}

export interface WorkerMetrics {
  registry: Registry;
  /** For Worker.create({ interceptors: { activity: [...] } }). */
  activityInterceptor: ActivityInterceptorsFactory;
  /** A deployment closed with this outcome (the deploy workflow's sink). */
  deploymentClosed(outcome: string): void;
  /** Reports `open()` as nixfleet_ssh_connections (the activities' SessionPool). */
  watchSshConnections(open: () => number): void;
}

export function createWorkerMetrics(registry = new Registry()): WorkerMetrics {
  collectDefaultMetrics({ register: registry, prefix: 'nixfleet_worker_' });
  const activities = new Counter({ name: 'nixfleet_activity_attempts_total', help: 'Activity attempts by activity and result (ok, cancelled, or the failure type)', labelNames: ['activity', 'result'], registers: [registry] });
  const steps = new Histogram({
    name: 'nixfleet_host_step_duration_seconds',
    help: 'Host steps (one activity attempt on one host) by step, host kind and result',
    labelNames: ['step', 'host_kind', 'result'],
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  const rollbacks = new Counter({ name: 'nixfleet_rollbacks_total', help: 'Host rollback attempts by result', labelNames: ['result'], registers: [registry] });
  const reverts = new Counter({ name: 'nixfleet_reverts_total', help: 'Revert attempts on GitHub by result and what they did (commit, already-reverted, pull-request)', labelNames: ['result', 'kind'], registers: [registry] });
  const audit = new Counter({ name: 'nixfleet_audit_entries_total', help: 'Audit entries recorded, by action (deploy, merge, auto-compensate, rollback, …) ', labelNames: ['action'], registers: [registry] });
  const deployments = new Counter({ name: 'nixfleet_deployments_requested_total', help: 'Deployments that started (requested) or were refused at the start', labelNames: ['outcome'], registers: [registry] });
  const closed = new Counter({ name: 'nixfleet_deployments_total', help: 'Deployments closed, by outcome (succeeded, failed-rolled-back, refused, …)', labelNames: ['outcome'], registers: [registry] });
  let openSsh: (() => number) | undefined;
  new Gauge({
    name: 'nixfleet_ssh_connections',
    help: 'SSH connections to hosts open (or being opened) in this worker',
    registers: [registry],
    collect() {
      this.set(openSsh ? openSsh() : 0);
    },
  });

  const activityInterceptor: ActivityInterceptorsFactory = (ctx: Context) => ({
    inbound: {
      async execute(input, next) {
        const type = ctx.info.activityType;
        const started = performance.now();
        let error: unknown;
        let value: unknown;
        try {
          value = await next(input);
          return value;
        } catch (err) {
          error = err;
          throw err;
        } finally {
          const result = resultOf(error);
          activities.inc({ activity: type, result });
          if (HOST_STEPS.has(type)) steps.observe({ step: type, host_kind: hostKindOf(input.args[0]), result }, (performance.now() - started) / 1000);
          if (type === 'rollbackHost') rollbacks.inc({ result });
          if (type === 'revertMerge') {
            const v = value as { kind?: string; alreadyReverted?: boolean } | undefined;
            reverts.inc({ result, kind: error !== undefined ? 'none' : v?.kind === 'commit' && v.alreadyReverted ? 'already-reverted' : String(v?.kind ?? 'none') });
          }
          if (type === 'recordAudit' && error === undefined) {
            const entry = (input.args[0] as { entry?: { action?: unknown; outcome?: unknown } } | undefined)?.entry;
            const action = typeof entry?.action === 'string' ? entry.action : 'unknown';
            audit.inc({ action });
            if (action === 'deploy' && typeof entry?.outcome === 'string') deployments.inc({ outcome: entry.outcome === 'requested' ? 'requested' : 'refused' });
          }
        }
      },
    },
  });

  return {
    registry,
    activityInterceptor,
    deploymentClosed(outcome) {
      closed.inc({ outcome: /^[a-z-]{1,40}$/.test(outcome) ? outcome : 'other' });
    },
    watchSshConnections(open) {
      openSsh = open;
    },
  };
}

/** The API's request metrics. */
export interface ApiMetrics {
  registry: Registry;
  observe(route: string, method: string, status: number, seconds: number): void;
  /** A GitHub webhook delivery and what came of it (see WEBHOOK_RESULTS). */
  webhook(result: WebhookResult): void;
}

/** What became of a webhook delivery: refused ones (unsigned, …) are counted before anything is parsed. */
export const WEBHOOK_RESULTS = ['started', 'already-started', 'ignored', 'unsigned', 'bad-signature', 'replayed', 'oversized', 'invalid', 'conflict', 'error'] as const;
export type WebhookResult = (typeof WEBHOOK_RESULTS)[number];

export function createApiMetrics(registry = new Registry()): ApiMetrics {
  collectDefaultMetrics({ register: registry, prefix: 'nixfleet_api_' });
  const requests = new Histogram({
    name: 'nixfleet_api_request_duration_seconds',
    help: 'API requests by route (the route pattern, not the URL), method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const webhooks = new Counter({
    name: 'nixfleet_api_webhook_deliveries_total',
    help: 'GitHub webhook deliveries by result: started, already-started, ignored, or refused (unsigned, bad-signature, replayed, oversized, invalid), conflict, error',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of WEBHOOK_RESULTS) webhooks.inc({ result }, 0);
  return {
    registry,
    observe(route, method, status, seconds) {
      requests.observe({ route, method, status: String(status) }, seconds);
    },
    webhook(result) {
      webhooks.inc({ result });
    },
  };
}

/** A listener that answers GET /metrics with the registry (and 404 otherwise). */
export async function startMetricsServer(registry: Registry, opts: { host: string; port: number }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
