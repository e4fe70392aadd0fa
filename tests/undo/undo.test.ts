/**
 * Undoing a deployment that succeeded, on the real stack: the Temporal dev server, the stand-in fleet
 * (sshd hosts with real Nix profiles), the GitHub stand-in backed by git, and a SQLite audit store.
 * The deployment's own history is deleted from Temporal first: the undo works from the audit store.
 * Driven as an operator would: the service (the API's and the CLI's use case) and the `temporal` CLI.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowNotFoundError } from '@temporalio/client';
import pino from 'pino';
import { createActivities } from '../../activities';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { EXIT, run } from '../../src/cli/main';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import { hostsOf, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { UndoService } from '../../src/service/undo';
import { locateTemporalBinary } from '../../testkit/dev-server';
import { fleetFlakeLock } from '../../testkit/fleet';
import { revertCommits, sagaHarness, saveHistory, startDeployment } from '../support/saga';
import { waitFor } from '../support/temporal';

const execFileP = promisify(execFile);
const OPERATOR = 'op-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';
const stack = sagaHarness();
const temporal = (...args: string[]) =>
  execFileP(locateTemporalBinary(), [...args, '--address', stack.t.server.address, '--namespace', stack.t.server.namespace], { timeout: 60_000 });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-undo-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('when a deployment that succeeded is undone the next day, after its history is gone, then its merge is reverted and the hosts still on its generation go back; a host changed since is left alone until named', async () => {
  const w = await stack.world({ hosts: [{ name: 'u1', kind: 'nixos' }, { name: 'u2', kind: 'nixos' }, { name: 'u3', kind: 'home-manager' }] });
  const file = join(dir, 'audit.db');
  const workerAudit = new SqliteAuditStore(file);
  const apiAudit = new SqliteAuditStore(file);
  try {
    const pr = await w.openLockUpdate('v2');
    const before = Object.fromEntries(['u1', 'u2', 'u3'].map((h) => [h, w.fleet.host(h).profileGeneration()]));
    await stack.withWorker(
      w,
      'undo-next-day',
      async (taskQueue) => {
        const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
        const done = await handle.result();
        expect(done.outcome).toBe('succeeded');
        const after = Object.fromEntries(['u1', 'u2', 'u3'].map((h) => [h, w.fleet.host(h).profileGeneration()]));
        for (const h of ['u1', 'u2', 'u3']) expect(after[h]).not.toEqual(before[h]);
        const deploymentId = handle.workflowId;
        await saveHistory(handle, 'g-undo-deploy-results');

        // The results the deployment wrote at close: every host's before/after, the merge.
        const [results] = await apiAudit.results(deploymentId);
        expect(results).toMatchObject({ outcome: 'succeeded', mergeSha: done.mergeSha, ownMerge: true, pullRequest: pr.number });
        expect(results?.hosts.map((h) => [h.name, h.state, h.before?.storePath, h.after?.storePath])).toEqual(['u1', 'u2', 'u3'].map((h) => [h, 'switched', before[h]?.storePath, after[h]?.storePath]));

        // Temporal's retention has dropped the deployment: its history is gone.
        await temporal('workflow', 'delete', '--workflow-id', deploymentId);
        await waitFor(`${deploymentId}'s history to be deleted`, async () => handle.describe().then(() => undefined, (err: unknown) => (err instanceof WorkflowNotFoundError ? true : undefined)), 60_000, 200);

        // Someone switched u3 by hand since (to its generation before the one before: a real profile move).
        const fleet = parseWith(FleetFile, w.fleetFile());
        const u3 = hostsOf(fleet).find((h) => h.name === 'u3');
        const older = w.fleet.host('u3').generations().find((g) => g.number === (before.u3?.number ?? 0) - 1);
        if (!u3 || !older) throw new Error('no u3 or no older generation');
        const { activities, close } = createActivities({ ...w.activityDeps(pino({ level: 'silent' })) });
        try {
          await activities.rollbackHost({ deploymentId: 'by-hand', host: u3, to: { number: older.number, storePath: older.storePath } });
        } finally {
          await close();
        }
        const u3Since = w.fleet.host('u3').profileGeneration();

        const undo = new UndoService(stack.t.client, taskQueue, apiAudit);
        // 1. Asked without naming u3: u3 is listed and left alone; the preview shows what the undo undoes.
        const first = await undo.start(deploymentId, { fleet: w.fleetFile() }, 'olga');
        expect(first.phase).toBe('awaiting-confirmation');
        expect(first.preview?.hosts.map((h) => [h.name, h.from.storePath, h.to.storePath, h.forced])).toEqual([
          ['u2', after.u2?.storePath, before.u2?.storePath, false],
          ['u1', after.u1?.storePath, before.u1?.storePath, false],
        ]);
        expect(first.preview?.hosts.every((h) => h.closureDiff !== undefined && h.closureDiff.from === h.from.storePath)).toBe(true);
        expect(first.preview?.skipped).toEqual([expect.objectContaining({ name: 'u3', why: 'changed-since', now: u3Since })]);
        expect(first.preview?.revert).toMatchObject({ needed: true, mergeSha: done.mergeSha });
        // The same request again (a retry, a second click) finds the same undo.
        expect((await undo.start(deploymentId, { fleet: w.fleetFile() }, 'olga')).undoId).toBe(first.undoId);
        const { stdout: preview } = await temporal('workflow', 'query', '--workflow-id', first.undoId, '--name', 'undoPreview', '--output', 'json');
        expect(preview).toContain('"changed-since"');
        // A malformed confirmation is refused by the update's validator; cancelling through the signal touches nothing.
        await expect(temporal('workflow', 'update', 'execute', '--workflow-id', first.undoId, '--name', 'confirmUndoAndWait', '--input', JSON.stringify({ action: 'confirm' }))).rejects.toThrow(/requestedBy/);
        await temporal('workflow', 'signal', '--workflow-id', first.undoId, '--name', 'confirmUndo', '--input', JSON.stringify({ action: 'cancel', requestedBy: 'olga' }));
        await waitFor('the undo to be cancelled', async () => ((await undo.status(first.undoId)).phase === 'cancelled' ? true : undefined), 60_000, 200);
        for (const h of ['u1', 'u2'] as const) expect(w.fleet.host(h).profileGeneration()).toEqual(after[h]);

        // 2. Asked again naming u3, confirmed with the temporal CLI's update: all three go back, the merge is reverted.
        const second = await undo.start(deploymentId, { fleet: w.fleetFile(), hosts: ['u3'] }, 'olga');
        expect(second.preview?.hosts.map((h) => [h.name, h.forced])).toEqual([
          ['u3', true],
          ['u2', false],
          ['u1', false],
        ]);
        const { stdout } = await temporal('workflow', 'update', 'execute', '--workflow-id', second.undoId, '--name', 'confirmUndoAndWait', '--input', JSON.stringify({ action: 'confirm', requestedBy: 'pat' }), '--output', 'json');
        expect(stdout).toContain('"done"');
        await stack.t.client.workflow.getHandle(second.undoId).result();
        await saveHistory(stack.t.client.workflow.getHandle(second.undoId), 'g-undo-undo');
        const final = await undo.status(second.undoId);
        expect(final).toMatchObject({ phase: 'done', confirmedBy: 'pat', revert: { kind: 'commit', alreadyReverted: false } });
        expect(final.hosts.map((h) => [h.name, h.state])).toEqual([
          ['u3', 'rolled-back'],
          ['u2', 'rolled-back'],
          ['u1', 'rolled-back'],
        ]);
        for (const h of ['u1', 'u2', 'u3'] as const) {
          expect(w.fleet.host(h).profileGeneration().storePath).toBe(before[h]?.storePath);
          expect(w.fleet.host(h).currentSystem()).toBe(before[h]?.storePath);
        }
        expect(await revertCommits(w, done.mergeSha as string)).toHaveLength(1);
        expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v1' }));

        // 3. Nothing is left to undo: a third request, through the CLI and the API, is refused and changes nothing.
        const app = buildApi({ service: new DeploymentService(stack.t.client, taskQueue), tokens: TokenStore.fromJson({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }, { token: VIEWER, identity: 'victor', role: 'viewer' }] }), logger: createLogger('test', 'silent'), audit: apiAudit, undo });
        await app.listen({ host: '127.0.0.1', port: 0 });
        try {
          const addr = app.server.address();
          const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
          const viewer = await fetch(`${base}/api/deployments/${deploymentId}/undo`, { method: 'POST', headers: { authorization: `Bearer ${VIEWER}`, 'content-type': 'application/json' }, body: JSON.stringify({ fleet: w.fleetFile() }) });
          expect(viewer.status).toBe(403);
          const fleetFile = join(dir, 'fleet.json');
          writeFileSync(fleetFile, JSON.stringify(w.fleetFile()));
          const out: string[] = [];
          const code = await run(['undo', deploymentId, '--fleet', fleetFile, '--yes'], { out: (l) => out.push(l), err: (l) => out.push(l), confirm: async () => false, env: { NIXFLEET_API_URL: base, NIXFLEET_TOKEN: OPERATOR } });
          expect(code).toBe(EXIT.error);
          expect(out.join('\n')).toMatch(/refused \(nothing-left\): nothing left to undo/);
        } finally {
          await app.close();
        }
        expect(await revertCommits(w, done.mergeSha as string)).toHaveLength(1);

        // The same audit trail: the undo's entries are in the deployment's, in the store.
        const trail = await apiAudit.list({ deploymentId });
        expect(trail.map((e) => `${e.actor}:${e.action}`)).toEqual([
          'alice:deploy',
          'alice:merge',
          'olga:undo',
          'olga:undo',
          'olga:undo',
          'pat:undo',
          'olga:undo',
        ]);
        expect(trail[5]).toMatchObject({ hosts: ['u3', 'u2', 'u1'], reverted: final.revert?.kind === 'commit' ? final.revert.commitSha : 'x' });
      },
      { audit: workerAudit },
    );
  } finally {
    await workerAudit.close();
    await apiAudit.close();
  }
  // A bound under load (three deployments' worth of host steps), not a timing assertion.
}, 600_000);
