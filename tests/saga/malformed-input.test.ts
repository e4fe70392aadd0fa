/**
 * Input from outside must not wedge a deployment (issue 12, bug 1): a rollback signal nobody validated
 * (the `temporal` CLI sends anything), and an audit entry the store refuses. On the real stack (dev
 * server, worker, stand-in hosts and GitHub, the SQLite audit store): the refusal is recorded, the
 * deployment still closes, and the fleet lock goes with it, so the next deployment of the fleet runs.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { locateTemporalBinary } from '../../testkit/dev-server';
import { deployWorkflow } from '../../workflows';
import { saveHistory, startDeployment, waitPhase, sagaHarness, type DeployHandle } from '../support/saga';
import { waitFor } from '../support/temporal';

const execFileP = promisify(execFile);
const stack = sagaHarness();
const temporal = (...args: string[]) =>
  execFileP(locateTemporalBinary(), [...args, '--address', stack.t.server.address, '--namespace', stack.t.server.namespace], { timeout: 60_000 });

let dir: string;
let store: SqliteAuditStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-malformed-'));
  store = new SqliteAuditStore(join(dir, 'audit.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The workflow's result, or a clear failure when it does not close in time (a wedged deployment never does). */
async function closes(handle: DeployHandle, what: string, timeoutMs = 90_000) {
  await waitFor(`${what} to close`, async () => ((await handle.describe()).status.name === 'RUNNING' ? undefined : true), timeoutMs, 250);
  return handle.result();
}

test('when a malformed rollback signal arrives (unknown action, an actor over 200 characters), then it is refused in the audit log, the deployment still closes, and the fleet is free again', async () => {
  const w = await stack.world({ hosts: [{ name: 'x1', kind: 'nixos' }, { name: 'x2', kind: 'nixos' }] });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('x2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(
    w,
    'malformed-signal',
    async (taskQueue) => {
      const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'off', rollbackHosts: false } });
      const before = await waitPhase(handle, ['awaiting-operator']);
      const signal = (input: unknown) => temporal('workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'rollback', '--input', JSON.stringify(input));
      await signal({ action: 'rm -rf /', requestedBy: 'mallory' });
      await signal({ action: 'dismiss', requestedBy: 'm'.repeat(300) });

      // Both refusals reach the durable log (before the fix the store refused them and the write was retried forever).
      const rows = await waitFor(
        'both refusals in the audit store',
        async () => {
          const r = await store.list({ deploymentId: handle.workflowId });
          return r.filter((e) => e.outcome.startsWith('rejected:')).length >= 2 ? r : undefined;
        },
        60_000,
        250,
      );
      const refused = rows.filter((e) => e.outcome.startsWith('rejected:'));
      expect(refused[0]).toMatchObject({ actor: 'mallory', action: 'invalid-request', hosts: [] });
      expect(refused[0]?.outcome).toContain('"rm -rf /"');
      expect(refused[1]?.actor.length).toBeLessThanOrEqual(200);
      expect(refused[1]?.actor).toMatch(/^m+…\[300 chars\]$/);
      expect(refused[1]?.outcome).toMatch(/requestedBy: at most 200 characters/);
      // The refusals changed nothing: still open, same hosts.
      const still = await waitPhase(handle, ['awaiting-operator']);
      expect(still.hosts.map((h) => h.state)).toEqual(before.hosts.map((h) => h.state));

      // The operator closes it; the deployment ends and releases the fleet.
      await signal({ action: 'dismiss', requestedBy: 'carol' });
      const final = await closes(handle, 'the dismissed deployment');
      expect(final.phase).toBe('closed');
      expect(final.outcome).toBe('failed-dismissed');
      expect((await store.list({ deploymentId: handle.workflowId })).map((e) => `${e.actor}:${e.action}`).at(-1)).toBe('carol:dismiss');
      // A history with the escaped fleet-lock id (patch marker) and the refusals, for the replay tests.
      await saveHistory(handle, 'malformed-signal');

      const pr2 = await w.openLockUpdate('v3');
      const next = await startDeployment(stack.t, w, taskQueue, { pr: pr2.number, manualWindowSeconds: 0 });
      const done = await closes(next, 'the next deployment of the fleet');
      expect(done.outcome).toBe('succeeded');
    },
    { audit: store },
  );
});

test('when the audit store refuses an entry, then the write fails once (non-retryable), the deployment reports it and still closes', async () => {
  const w = await stack.world({ hosts: [{ name: 'y1', kind: 'nixos' }] });
  const pr = await w.openLockUpdate('v2');
  await stack.withWorker(
    w,
    'audit-refused',
    async (taskQueue) => {
      // A deployment id longer than the store keeps (400): started by hand, not through the API.
      const input = buildDeployInput(parseWith(FleetFile, { ...w.fleetFile(), manualWindow: 0 }), { pullRequest: pr.number }, 'alice');
      input.deploymentId = `${input.deploymentId}-${'z'.repeat(420)}`;
      const handle = await stack.t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input] });
      const final = await closes(handle, 'the deployment whose audit entries are refused');
      expect(final.outcome).toBe('succeeded');
      expect(final.auditFailures?.length).toBe(final.audit.length);
      expect(final.auditFailures?.[0]).toMatchObject({ seq: 1, type: 'AuditRefused', error: expect.stringMatching(/deploymentId/) });
      expect(await store.list({ deploymentId: input.deploymentId })).toEqual([]);
      // One attempt per entry: refused is final, not retried. (The deployment's results record at close,
      // for a later undo, is refused as well, once, and does not keep it from closing.)
      const history = await handle.fetchHistory();
      const events = history.events ?? [];
      const typeOf = (scheduledId: unknown): string | undefined =>
        events.find((e) => String(e.eventId) === String(scheduledId))?.activityTaskScheduledEventAttributes?.activityType?.name ?? undefined;
      const failed = events.filter((e) => e.activityTaskFailedEventAttributes);
      const failedAudit = failed.filter((e) => typeOf(e.activityTaskFailedEventAttributes?.scheduledEventId) === 'recordAudit');
      expect(failedAudit).toHaveLength(final.audit.length);
      expect(failed.length - failedAudit.length).toBeLessThanOrEqual(1);
      for (const e of failed) expect(e.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo).toMatchObject({ type: 'AuditRefused', nonRetryable: true });
    },
    { audit: store },
  );
});
