/**
 * Bad input to a failed deployment on the real stack (dev server, stand-in hosts behind the
 * allowlist, GitHub stand-in), fast-check generated: arbitrary JSON to the `rollbackAndWait` update
 * and the `rollback` signal, and arbitrary bodies to POST /api/deployments and POST …/rollback of the
 * API running in-process. Never a crash or a 500, always an error naming the field, the workflow keeps
 * running, and nothing changes: no host touched (the hosts' own logs), no revert commit, same state.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { REFUSAL_AUDIT_LIMITS } from '../../src/domain/audit';
import { createLogger } from '../../src/logger';
import { ChangeInput, FleetFile } from '../../src/schemas/fleet.schema';
import { DeploymentService } from '../../src/service/deployments';
import type { World } from '../../testkit/world';
import { rollbackSignal, rollbackUpdate, statusQuery } from '../../workflows/messages';
import { recorder } from '../faults/figures';
import { startAllowlistedWorld, startInProcessWorker, type RunningWorker } from '../faults/harness';
import { profileMoves, revertCommits, startDeployment, waitPhase, type DeployHandle } from '../support/saga';
import { startTestTemporal, waitFor, type TestTemporal } from '../support/temporal';

const rec = recorder(__filename);
const OPERATOR = 'op-token-fuzz-0123456789abcdef';
let t: TestTemporal;
let world: World;
let worker: RunningWorker;
let app: FastifyInstance;
let base = '';
let handle: DeployHandle;
let baseline: DeploymentStatus;
const HOSTS = ['p1', 'p2', 'p3'];

beforeAll(async () => {
  t = await startTestTemporal();
  world = await startAllowlistedWorld({ hosts: HOSTS.map((name) => ({ name, kind: 'nixos' as const })) });
  worker = await startInProcessWorker(t, world, 'fuzz-messages');
  const pr = await world.openLockUpdate('v2');
  world.fleet.host('p2').failActivation('units', { onlyVersion: 'v2' });
  handle = await startDeployment(t, world, worker.taskQueue, { pr: pr.number, onFailure: { revert: 'off', rollbackHosts: false } });
  baseline = await waitPhase(handle, ['awaiting-operator'], 90_000);
  app = buildApi({
    service: new DeploymentService(t.client, worker.taskQueue),
    tokens: TokenStore.fromJson({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }] }),
    logger: createLogger('fuzz', 'silent'),
    // Hundreds of requests on purpose: the rate limits are tested in tests/api/limits.test.ts.
    limits: { mutations: { max: 100_000, windowMs: 60_000 }, authFailures: { max: 100_000, windowMs: 60_000 } },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  rec.run();
}, 180_000);
afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await world?.stop();
  await t?.stop();
  rec.save();
});

/** The parts of the status an invalid request must not change. */
const essence = (s: DeploymentStatus) => ({ phase: s.phase, outcome: s.outcome, revert: s.revert, hosts: s.hosts, failedHost: s.failedHost });
const hostMoves = () => HOSTS.map((h) => profileMoves(world, h));

function isValidRequest(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.requestedBy === 'string' &&
    r.requestedBy.trim() !== '' &&
    r.requestedBy.length <= 200 &&
    (r.reason === undefined || (typeof r.reason === 'string' && r.reason.length <= 500)) &&
    ['revert', 'revert-and-rollback', 'dismiss'].includes(r.action as string) &&
    (r.revertMode === undefined || r.revertMode === 'commit' || r.revertMode === 'pull-request')
  );
}
const anyField = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('revert', 'dismiss', 'revert-and-rollback', 'commit', '', '   ', "'; touch /tmp/x'"));
const requestLike = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({ action: anyField, requestedBy: anyField, revertMode: anyField, reason: anyField }, { requiredKeys: [] }),
).filter((v) => !isValidRequest(v));
const NAMES_FIELD = /^(request must be an object|requestedBy: |action: |revertMode: |reason: )/;

test('arbitrary JSON to the rollbackAndWait update: rejected by the validator naming the field, nothing changes (150 payloads)', async () => {
  const moves = hostMoves();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(requestLike, async (payload) => {
      n += 1;
      const err = await handle.executeUpdate(rollbackUpdate, { args: [payload as never] }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((err as { cause?: Error }).cause?.message)).toMatch(NAMES_FIELD);
    }),
    { numRuns: 150 },
  );
  rec.inputs(n);
  const now = await handle.query(statusQuery);
  rec.check('update: status unchanged', JSON.stringify(essence(now)) === JSON.stringify(essence(baseline)));
  rec.check('update: no audit entry for a refused update', now.audit.length === baseline.audit.length, now.audit.length);
  rec.check('update: no host touched', JSON.stringify(hostMoves()) === JSON.stringify(moves));
});

test('arbitrary JSON to the rollback signal: recorded as rejected naming the field, the workflow keeps running, nothing else changes (60 payloads)', async () => {
  const moves = hostMoves();
  const before = await handle.query(statusQuery);
  const sent: unknown[] = [];
  await fc.assert(
    fc.asyncProperty(requestLike, async (payload) => {
      sent.push(payload);
      await handle.signal(rollbackSignal, payload as never);
    }),
    { numRuns: 60 },
  );
  rec.inputs(sent.length);
  const after = await waitFor('every signal to be handled', async () => {
    const s = await handle.query(statusQuery);
    return s.audit.length + (s.refusalsNotRecorded ?? 0) >= before.audit.length + (before.refusalsNotRecorded ?? 0) + sent.length ? s : undefined;
  }, 60_000);
  const added = after.audit.slice(before.audit.length);
  // Each is recorded, or (past the trail's limit of refusals, or the same as the one before it) counted (patched 'refusals-bounded').
  const uncounted = (after.refusalsNotRecorded ?? 0) - (before.refusalsNotRecorded ?? 0);
  rec.check('signal: each recorded or counted', added.length + uncounted === sent.length, `${added.length} + ${uncounted}`);
  rec.check('signal: refusals recorded within the limit', after.audit.filter((a) => a.outcome.startsWith('rejected: ')).length <= REFUSAL_AUDIT_LIMITS.total, added.length);
  for (const a of added) rec.check('signal: rejected naming the field', /^rejected: (request must be an object|requestedBy: |action: |revertMode: |reason: )/.test(a.outcome), a.outcome);
  rec.check('signal: status unchanged', JSON.stringify(essence(after)) === JSON.stringify(essence(baseline)));
  rec.check('signal: workflow still running', (await handle.describe()).status.name === 'RUNNING');
  rec.check('signal: no host touched', JSON.stringify(hostMoves()) === JSON.stringify(moves));
});

async function post(url: string, body: string, contentType = 'application/json'): Promise<{ status: number; json: { error?: string; message?: string } }> {
  const res = await fetch(`${base}${url}`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': contentType }, body });
  const text = await res.text();
  let json: { error?: string; message?: string } = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    json = { message: text };
  }
  return { status: res.status, json };
}

test('arbitrary bodies to POST /api/deployments: 400 naming the field, never a 500, nothing started (300 bodies)', async () => {
  const valid = world.fleetFile();
  const mutate = fc.record({ key: fc.constantFrom('repository', 'flakeRef', 'onFailure', 'manualWindow', 'defaults', 'hosts', 'extra'), value: fc.jsonValue({ maxDepth: 3 }) });
  const body = fc.oneof(
    fc.jsonValue({ maxDepth: 4 }),
    fc.record({ fleet: fc.jsonValue({ maxDepth: 3 }), change: fc.jsonValue({ maxDepth: 2 }) }),
    fc.record({ m: mutate, change: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant({ pullRequest: 1 })) }).map(({ m, change }) => ({ fleet: { ...valid, [m.key]: m.value }, change })),
  ).filter((b) => {
    const o = b as { fleet?: unknown; change?: unknown };
    return !(typeof b === 'object' && b !== null && FleetFile.safeParse(o.fleet).success && ChangeInput.safeParse(o.change).success);
  });
  const statuses: Record<number, number> = {};
  let n = 0;
  await fc.assert(
    fc.asyncProperty(body, async (b) => {
      n += 1;
      const r = await post('/api/deployments', JSON.stringify(b));
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      expect(r.status).toBe(400);
      expect(r.json.message ?? '').toMatch(/(^|\n)(\(input\)|fleet|change)[^\n]*: /);
    }),
    { numRuns: 300 },
  );
  for (const raw of ['{', 'null', '"x"', '[]', '{"fleet":', '\u0000']) {
    const r = await post('/api/deployments', raw);
    n += 1;
    rec.check(`malformed body ${JSON.stringify(raw)} is a 4xx`, r.status >= 400 && r.status < 500, r.status);
  }
  rec.inputs(n);
  rec.check('POST /api/deployments: only 400s', Object.keys(statuses).join() === '400', statuses);
  const list = [];
  for await (const wf of t.client.workflow.list({ query: `WorkflowType = 'deployWorkflow'` })) list.push(wf.workflowId);
  rec.check('no deployment started by a bad body', list.length === 1, list);
});

test('arbitrary bodies to POST /api/deployments/:id/rollback: 400 naming the field or 409, never a 500, nothing changes (200 bodies)', async () => {
  const moves = hostMoves();
  const before = await handle.query(statusQuery);
  const body = fc
    .oneof(fc.jsonValue({ maxDepth: 3 }), fc.record({ action: anyField, revertMode: anyField, reason: anyField, requestedBy: anyField }, { requiredKeys: [] }))
    .filter((b) => {
      const o = b as Record<string, unknown>;
      // A well-formed body is a real action: keep those out, they would (rightly) change the deployment.
      return !(typeof b === 'object' && b !== null && !Array.isArray(b) && ['revert', 'revert-and-rollback'].includes(o.action as string) && Object.keys(o).every((k) => ['action', 'revertMode', 'reason'].includes(k)) && (o.revertMode === undefined || ['commit', 'pull-request'].includes(o.revertMode as string)) && (o.reason === undefined || (typeof o.reason === 'string' && o.reason.length <= 500)));
    });
  let n = 0;
  await fc.assert(
    fc.asyncProperty(body, fc.constantFrom(handle.workflowId, `${handle.workflowId}x`, '..', 'a b', "x';touch"), async (b, id) => {
      n += 1;
      const r = await post(`/api/deployments/${encodeURIComponent(id)}/rollback`, JSON.stringify(b));
      expect([400, 404]).toContain(r.status);
      if (r.status === 400) expect(r.json.message ?? '').toMatch(/(^|\n)(\(input\)|id|action|revertMode|reason|requestedBy)[^\n]*: /);
    }),
    { numRuns: 200 },
  );
  rec.inputs(n);
  const after = await handle.query(statusQuery);
  rec.check('rollback route: status and audit unchanged', JSON.stringify(essence(after)) === JSON.stringify(essence(before)) && after.audit.length === before.audit.length);
  rec.check('rollback route: no host touched', JSON.stringify(hostMoves()) === JSON.stringify(moves));
  rec.check('rollback route: no revert commit', (await revertCommits(world, baseline.mergeSha as string)).length === 0);
});

test('after all that, the deployment still works: a valid update reverts and rolls back', async () => {
  const out = await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert-and-rollback', requestedBy: 'olga' }] });
  expect(out.accepted).toBe(true);
  rec.check('deployment alive: rolled back after fuzzing', out.status.hosts.filter((h) => h.state === 'rolled-back').length === 2, out.status.hosts);
  rec.check('exactly one revert commit', (await revertCommits(world, baseline.mergeSha as string)).length === 1);
  rec.note(`messages: ${rec.figures.inputsTried} payloads/bodies against one failed real deployment; nothing changed until the valid request`);
});
