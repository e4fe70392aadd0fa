/**
 * Manual rollback after a failed deployment whose automatic compensation is off, driven the way an
 * operator would: the `temporal` CLI's signal, and the update (through the CLI and the client).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fleetFlakeLock } from '../../testkit/fleet';
import { locateTemporalBinary } from '../../testkit/dev-server';
import { rollbackPreviewQuery, rollbackUpdate } from '../../workflows/messages';
import { revertCommits, saveHistory, startDeployment, waitPhase, sagaHarness } from '../support/saga';
import type { World } from '../../testkit/world';

const execFileP = promisify(execFile);
const stack = sagaHarness();

const temporal = (...args: string[]) =>
  execFileP(locateTemporalBinary(), [...args, '--address', stack.t.server.address, '--namespace', stack.t.server.namespace], { timeout: 60_000 });

async function failedDeployment(title: string, fn: (w: World, handle: Awaited<ReturnType<typeof startDeployment>>) => Promise<void>): Promise<void> {
  const w = (await stack.world({ hosts: [{ name: 'm1', kind: 'nixos' }, { name: 'm2', kind: 'nixos' }, { name: 'm3', kind: 'nixos' }] }));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('m2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, title, async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'off', rollbackHosts: false } });
    const s = await waitPhase(handle, ['awaiting-operator']);
    expect(s.hosts.map((x) => x.state)).toEqual(['switched', 'failed', 'not-attempted']);
    await fn(w, handle);
  });
}

test('when an operator sends the rollback signal with the temporal CLI, then the merge is reverted and the deployed hosts rolled back', async () => {
  await failedDeployment('cli-signal', async (w, handle) => {
    const before = { m1: w.fleet.host('m1').generations()[2]!, m2: w.fleet.host('m2').generations()[2]! };
    // The preview the confirmation dialog shows, read with the CLI.
    const { stdout: preview } = await temporal('workflow', 'query', '--workflow-id', handle.workflowId, '--name', 'rollbackPreview', '--output', 'json');
    expect(preview).toContain('"m2"');
    expect(await handle.query(rollbackPreviewQuery)).toMatchObject({ hosts: [{ name: 'm2', to: { number: 42 } }, { name: 'm1', to: { number: 42 } }], allowed: ['revert', 'revert-and-rollback', 'dismiss'] });

    await temporal('workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'rollback', '--input', JSON.stringify({ action: 'revert-and-rollback', requestedBy: 'carol' }));
    const final = await handle.result();
    expect(final.hosts.map((h) => h.state)).toEqual(['rolled-back', 'rolled-back', 'not-attempted']);
    for (const h of ['m1', 'm2'] as const) {
      expect(w.fleet.host(h).profileGeneration()).toEqual({ number: before[h].number, storePath: before[h].storePath });
      expect(w.fleet.host(h).currentSystem()).toBe(before[h].storePath);
    }
    expect(await revertCommits(w, final.mergeSha as string)).toHaveLength(1);
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v1' }));
    expect(final.audit.at(-1)).toMatchObject({ actor: 'carol', action: 'revert-and-rollback', hosts: ['m2', 'm1'], reverted: final.revert?.kind === 'commit' ? final.revert.commitSha : 'x' });
    expect(final.outcome).toBe('failed-rolled-back');
    await saveHistory(handle, 'manual-signal');
  });
});

test('when an operator reverts through the update, then the outcome comes back, and a bad request is refused by the validator without touching anything', async () => {
  await failedDeployment('update', async (w, handle) => {
    // The validator refuses a request without an actor, through the CLI as through the client.
    await expect(temporal('workflow', 'update', 'execute', '--workflow-id', handle.workflowId, '--name', 'rollbackAndWait', '--input', JSON.stringify({ action: 'revert' }))).rejects.toThrow(/requestedBy/);
    const { stdout } = await temporal('workflow', 'update', 'execute', '--workflow-id', handle.workflowId, '--name', 'rollbackAndWait', '--input', JSON.stringify({ action: 'revert', requestedBy: 'dave', revertMode: 'pull-request' }), '--output', 'json');
    expect(stdout).toContain('"accepted": true');
    const s = await waitPhase(handle, ['awaiting-operator']);
    expect(s.revert).toMatchObject({ kind: 'pull-request' });
    // Hosts untouched by a revert-only request; the rollback is still open.
    expect(s.hosts.map((h) => h.state)).toEqual(['switched', 'failed', 'not-attempted']);
    expect((await handle.query(rollbackPreviewQuery)).allowed).toEqual(['revert-and-rollback', 'dismiss']);
    const outcome = await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert-and-rollback', requestedBy: 'erin' }] });
    expect(outcome.accepted).toBe(true);
    expect(outcome.status.hosts.map((h) => h.state)).toEqual(['rolled-back', 'rolled-back', 'not-attempted']);
    // One revert pull request in all: the second request did not open another.
    expect(w.github.pulls(w.owner, w.repo).filter((p) => p.headRef.startsWith('revert-'))).toHaveLength(1);
    const final = await handle.result();
    expect(final.audit.map((a) => `${a.actor}:${a.action}`)).toEqual(['alice:deploy', 'alice:merge', 'dave:revert', 'erin:revert-and-rollback']);
    await saveHistory(handle, 'manual-update');
  });
});
