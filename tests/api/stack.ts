/**
 * The whole product on the real parts for the operator-surface tests: a Temporal dev server, the
 * stand-in world (sshd + Nix hosts, git-backed GitHub), a worker with the real activities writing the
 * SQLite audit log, and the API (with its WebSocket and the dashboard) on a loopback port.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { DeploymentStatus, Phase } from '../../src/domain/deployment';
import { createLogger } from '../../src/logger';
import { createApiMetrics, createWorkerMetrics, startMetricsServer } from '../../src/metrics';
import type { FleetFile } from '../../src/schemas/fleet.schema';
import { DeploymentService } from '../../src/service/deployments';
import { UndoService } from '../../src/service/undo';
import type { StandinHostSpec } from '../../testkit/fleet';
import { startWorld, type World, type WorldOptions } from '../../testkit/world';
import { createDeployWorker } from '../../workers/worker';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';

export const OPERATOR = 'op-token-0123456789abcdef';
export const VIEWER = 'viewer-token-0123456789abcdef';
/** A second operator (otto), for what another operator does at the same time. */
export const OPERATOR2 = 'op2-token-0123456789abcdef';

export interface Stack {
  t: TestTemporal;
  world: World;
  base: string;
  app: FastifyInstance;
  audit: SqliteAuditStore;
  dir: string;
  auditFile: string;
  /** Writes the fleet as a fleet file (JSON is YAML) and returns its path. */
  fleetFile(onFailure: FleetFile['onFailure']): string;
  call<T = unknown>(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  deploy(pr: number, onFailure: FleetFile['onFailure']): Promise<string>;
  waitPhase(id: string, phases: Phase[]): Promise<DeploymentStatus>;
  /** With opts.metrics: the worker's own metrics listener (GET …/metrics). */
  workerMetricsUrl?: string;
  stop(): Promise<void>;
}

/** `auditFile`: keep the audit database outside the stack's directory (it survives stop()). */
export async function startStack(
  title: string,
  hosts: StandinHostSpec[],
  /** webhook: the API's GitHub webhook route with this secret, for the fleets `fleets(world)` returns. */
  opts: { pollMs?: number; auditFile?: string; metrics?: boolean; webhook?: { secret: string; fleets(world: World): FleetFile[] }; world?: Omit<WorldOptions, 'hosts'> } = {},
): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-stack-'));
  const auditFile = opts.auditFile ?? join(dir, 'state', 'audit.db');
  const t = await startTestTemporal();
  const cleanups: Array<() => Promise<unknown>> = [async () => t.stop()];
  const stopAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => console.error('stack cleanup:', err));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const world = await startWorld({ ...opts.world, hosts });
    cleanups.push(async () => world.stop());
    const workerAudit = new SqliteAuditStore(auditFile);
    const taskQueue = taskQueueFor(title);
    const workerMetrics = opts.metrics ? createWorkerMetrics() : undefined;
    const metricsServer = workerMetrics ? await startMetricsServer(workerMetrics.registry, { host: '127.0.0.1', port: 0 }) : undefined;
    if (metricsServer) cleanups.push(async () => metricsServer.close());
    const { worker, close } = await createDeployWorker({
      ...(workerMetrics ? { metrics: workerMetrics } : {}),
      connection: t.nativeConnection,
      namespace: t.server.namespace,
      taskQueue,
      deps: { ...world.activityDeps(), audit: workerAudit },
      workflowBundle: await workflowBundle(),
    });
    const running = worker.run();
    cleanups.push(async () => {
      worker.shutdown();
      await running;
      await close();
      await workerAudit.close();
    });
    // The API opens the file on its own, as a separate process would.
    const audit = new SqliteAuditStore(auditFile);
    const tokens = TokenStore.fromJson({
      tokens: [
        { token: OPERATOR, identity: 'olga', role: 'operator' },
        { token: VIEWER, identity: 'victor', role: 'viewer' },
        { token: OPERATOR2, identity: 'otto', role: 'operator' },
      ],
    });
    // Count the service's Temporal calls in flight: a browser that goes away leaves its request's
    // query running (and maybe retrying: "consistent query buffer is full"); the stack must not close
    // the Temporal connection under it.
    let inflight = 0;
    const service = new DeploymentService(t.client, taskQueue);
    const counted = new Proxy(service, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          const r = (v as (...a: unknown[]) => unknown).apply(target, args);
          if (r instanceof Promise) {
            inflight += 1;
            return r.finally(() => {
              inflight -= 1;
            });
          }
          return r;
        };
      },
    });
    const app = buildApi({
      service: counted,
      tokens,
      logger: createLogger('test', 'silent'),
      audit,
      undo: new UndoService(t.client, taskQueue, audit),
      progressPollMs: opts.pollMs ?? 100,
      ...(opts.metrics ? { metrics: createApiMetrics() } : {}),
      ...(opts.webhook ? { webhook: { secret: opts.webhook.secret, fleets: opts.webhook.fleets(world), github: world.activityDeps().github } } : {}),
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(async () => {
      await app.close();
      await waitFor('the API\'s Temporal calls in flight to finish', () => (inflight === 0 ? true : undefined), 60_000, 50);
      await audit.close();
    });
    const addr = app.server.address();
    const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

    const call = async <T>(method: string, path: string, body?: unknown, token = OPERATOR): Promise<{ status: number; body: T }> => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    };
    let files = 0;
    return {
      t,
      world,
      base,
      app,
      audit,
      dir,
      auditFile,
      fleetFile(onFailure) {
        files += 1;
        const f = join(dir, `fleet-${files}.json`);
        writeFileSync(f, JSON.stringify(world.fleetFile(onFailure), null, 2));
        return f;
      },
      call,
      async deploy(pr, onFailure) {
        const res = await call<{ deploymentId: string; message?: string }>('POST', '/api/deployments', { fleet: world.fleetFile(onFailure), change: { pullRequest: pr } });
        if (res.status !== 201) throw new Error(`deploy: ${res.status} ${res.body.message}`);
        return res.body.deploymentId;
      },
      async waitPhase(id, phases) {
        return waitFor(
          `${id} to reach ${phases.join(' or ')}`,
          async () => {
            const s = await call<DeploymentStatus>('GET', `/api/deployments/${id}`, undefined, VIEWER);
            return s.status === 200 && phases.includes(s.body.phase) ? s.body : undefined;
          },
          120_000,
          200,
        );
      },
      ...(metricsServer ? { workerMetricsUrl: metricsServer.url } : {}),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** A WebSocket client of /api/ws that keeps every message it receives. */
export class ProgressClient {
  readonly messages: Array<Record<string, unknown> & { type: string }> = [];
  closed: { code: number; reason: string } | undefined;
  readonly ws: WebSocket;
  private readonly opened: Promise<void>;

  constructor(base: string, opts: { header?: string } = {}) {
    this.ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/ws`, opts.header ? { headers: { authorization: `Bearer ${opts.header}` } } : {});
    this.ws.on('message', (d: Buffer) => this.messages.push(JSON.parse(d.toString('utf8')) as Record<string, unknown> & { type: string }));
    this.ws.on('close', (code: number, reason: Buffer) => (this.closed = { code, reason: reason.toString() }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  async send(m: unknown): Promise<void> {
    await this.opened;
    this.ws.send(JSON.stringify(m));
  }

  async waitFor<T extends Record<string, unknown>>(what: string, pred: (m: Record<string, unknown> & { type: string }) => boolean, timeoutMs = 120_000): Promise<T> {
    return waitFor(what, () => this.messages.find(pred) as T | undefined, timeoutMs, 50);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
