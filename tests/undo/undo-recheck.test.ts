/**
 * The undo does not hold the fleet while its plan awaits a confirmation; once confirmed it takes the
 * fleet lock and reads again the hosts it rolls back (src/domain/undo-recheck.ts). On the real stack:
 * the Temporal dev server, the stand-in fleet, the GitHub stand-in and a SQLite audit store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import pino from 'pino';
import { createActivities } from '../../activities';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { hostsOf, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { UndoService } from '../../src/service/undo';
import { fleetLockId, fleetLockWorkflow } from '../../workflows/fleet-lock';
import { revertCommits, sagaHarness, saveHistory, startDeployment } from '../support/saga';

const stack = sagaHarness();
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-undo-recheck-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('when an undo awaits its confirmation, then the fleet is free; confirmed while another holds the fleet or after a host moved, it is refused with what changed and touches nothing; asked again, it undoes the new plan', async () => {
  const w = await stack.world({ hosts: [{ name: 'k1', kind: 'nixos' }, { name: 'k2', kind: 'nixos' }] });
  const file = join(dir, 'audit.db');
  const workerAudit = new SqliteAuditStore(file);
  const apiAudit = new SqliteAuditStore(file);
  try {
    const pr = await w.openLockUpdate('v2');
    const before = Object.fromEntries(['k1', 'k2'].map((h) => [h, w.fleet.host(h).profileGeneration()]));
    await stack.withWorker(
      w,
      'undo-recheck',
      async (taskQueue) => {
        const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
        const done = await handle.result();
        expect(done.outcome).toBe('succeeded');
        const after = Object.fromEntries(['k1', 'k2'].map((h) => [h, w.fleet.host(h).profileGeneration()]));
        const deploymentId = handle.workflowId;
        const lockId = fleetLockId({ owner: w.owner, name: w.repo, branch: w.branch });
        const lockRunning = async (): Promise<boolean> =>
          stack.t.client.workflow.getHandle(lockId).describe().then(
            (d) => d.status.name === 'RUNNING',
            (err: unknown) => {
              if (err instanceof WorkflowNotFoundError) return false;
              throw err;
            },
          );
        const undo = new UndoService(stack.t.client, taskQueue, apiAudit);

        // 1. The plan awaits its confirmation without the fleet; another holder takes it meanwhile (the
        //    lock a deployment starts, by its id); the confirmation is refused and nothing is touched.
        const first = await undo.start(deploymentId, { fleet: w.fleetFile() }, 'olga');
        expect(first.phase).toBe('awaiting-confirmation');
        expect(first.preview?.hosts.map((h) => h.name)).toEqual(['k2', 'k1']);
        expect(await lockRunning()).toBe(false);
        const holder = await stack.t.client.workflow.start(fleetLockWorkflow, { taskQueue, workflowId: lockId, args: [{ deploymentId: 'deploy-started-meanwhile' }] });
        const busy = await undo.confirm(first.undoId, { action: 'confirm' }, 'pat');
        expect(busy).toMatchObject({ phase: 'refused', confirmedBy: 'pat', refusal: { code: 'fleet-busy', reason: expect.stringContaining('started while the undo awaited its confirmation') } });
        await holder.terminate('the other deployment closed');
        for (const h of ['k1', 'k2'] as const) expect(w.fleet.host(h).profileGeneration()).toEqual(after[h]);
        expect(await revertCommits(w, done.mergeSha as string)).toEqual([]);

        // 2. Asked again; while it awaits the confirmation, k1 is moved by hand (a real profile move).
        const second = await undo.start(deploymentId, { fleet: w.fleetFile() }, 'olga');
        expect(second.phase).toBe('awaiting-confirmation');
        const fleet = parseWith(FleetFile, w.fleetFile());
        const k1 = hostsOf(fleet).find((h) => h.name === 'k1');
        const older = w.fleet.host('k1').generations().find((g) => g.number === (before.k1?.number ?? 0) - 1);
        if (!k1 || !older) throw new Error('no k1 or no older generation');
        const { activities, close } = createActivities({ ...w.activityDeps(pino({ level: 'silent' })) });
        try {
          await activities.rollbackHost({ deploymentId: 'by-hand', host: k1, to: { number: older.number, storePath: older.storePath } });
        } finally {
          await close();
        }
        const k1Now = w.fleet.host('k1').profileGeneration();
        const moved = await undo.confirm(second.undoId, { action: 'confirm' }, 'pat');
        expect(moved).toMatchObject({ phase: 'refused', refusal: { code: 'changed-since-confirmation' }, changes: [{ name: 'k1', confirmed: after.k1, now: k1Now }] });
        expect(moved.refusal?.reason).toMatch(/^changed since the confirmation, nothing undone: k1 runs generation/);
        expect(moved.hosts.every((h) => h.state === 'pending')).toBe(true);
        expect(w.fleet.host('k2').profileGeneration()).toEqual(after.k2);
        expect(await revertCommits(w, done.mergeSha as string)).toEqual([]);
        await stack.t.client.workflow.getHandle(second.undoId).result();
        await saveHistory(stack.t.client.workflow.getHandle(second.undoId), 'd-around-undo-recheck');

        // 3. Asked again: the new plan leaves k1 alone; confirmed, nothing moved, so it is carried out.
        const third = await undo.start(deploymentId, { fleet: w.fleetFile() }, 'olga');
        expect(third.preview?.hosts.map((h) => h.name)).toEqual(['k2']);
        expect(third.preview?.skipped).toEqual([expect.objectContaining({ name: 'k1', why: 'changed-since' })]);
        const final = await undo.confirm(third.undoId, { action: 'confirm' }, 'pat');
        expect(final).toMatchObject({ phase: 'done', revert: { kind: 'commit', alreadyReverted: false } });
        expect(final.hosts.map((h) => [h.name, h.state])).toEqual([['k2', 'rolled-back']]);
        expect(w.fleet.host('k2').profileGeneration().storePath).toBe(before.k2?.storePath);
        expect(w.fleet.host('k1').profileGeneration()).toEqual(k1Now);
        expect(await revertCommits(w, done.mergeSha as string)).toHaveLength(1);

        await stack.t.client.workflow.getHandle(third.undoId).result();
        const trail = await apiAudit.list({ deploymentId });
        expect(trail.filter((e) => e.action === 'undo').map((e) => `${e.actor}: ${e.outcome.split(':')[0]}`)).toEqual([
          'olga: requested',
          'pat: confirmed, then refused (fleet-busy)',
          'olga: requested',
          'pat: confirmed, then refused (changed-since-confirmation)',
          'olga: requested',
          'pat: undone',
        ]);
      },
      { audit: workerAudit },
    );
  } finally {
    await workerAudit.close();
    await apiAudit.close();
  }
  // A bound under load, not a timing assertion.
}, 600_000);
