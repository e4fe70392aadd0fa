/**
 * The nixfleet CLI as an operator runs it: bin/nixfleet spawned against the API on the real stack.
 * A script can tell success (0), "failed, rolled back" (10), "failed, rollback incomplete" (11) and
 * "failed, not rolled back" (12) apart.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { EXIT } from '../../src/cli/main';
import { OPERATOR, startStack, VIEWER, type Stack } from '../api/stack';

let s: Stack;
beforeAll(async () => {
  s = await startStack('cli-exit-codes', [
    { name: 'c1', kind: 'nixos' },
    { name: 'c2', kind: 'nixos' },
    { name: 'c3', kind: 'nixos' },
  ]);
});
afterAll(async () => {
  await s?.stop();
});

const BIN = join(__dirname, '..', '..', 'bin', 'nixfleet');

/** Runs bin/nixfleet to completion; stdin is not a terminal, so a confirmation is answered "no". */
async function nixfleet(args: string[], token = OPERATOR): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, NIXFLEET_API_URL: s.base, NIXFLEET_TOKEN: token },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, out, err };
}

/** The live view's host transitions (`  c1   switched   → rolling-back`), as `c1 switched → rolling-back`. */
const transitionLines = (out: string): string[] =>
  out.split('\n').flatMap((l) => {
    const m = /^ {2}(\S+)\s+(\S+)\s+→ (\S+)/.exec(l);
    return m ? [`${m[1]} ${m[2]} → ${m[3]}`] : [];
  });

test('when a deployment succeeds, then deploy shows each host switching live and exits 0', async () => {
  const pr = await s.world.openLockUpdate('v2');
  const r = await nixfleet(['deploy', '--fleet', s.fleetFile({ revert: 'commit', rollbackHosts: true }), '--pr', String(pr.number)]);
  expect(r).toMatchObject({ code: EXIT.ok });
  expect(r.out).toMatch(/c3\s+switching\s+→ switched\s+generation 43/);
  // From the first transition (the CLI follows from cursor 0), each once, in order.
  expect(transitionLines(r.out)).toEqual(['c1', 'c2', 'c3'].flatMap((h) => [`${h} pending → switching`, `${h} switching → switched`]));
  expect(r.out).toMatch(/c3\s+nixos\s+switched\s+42 → 43/);
});

test('when a deployment fails and its compensation rolls every host back, then deploy exits 10', async () => {
  const pr = await s.world.openLockUpdate('v3');
  s.world.fleet.host('c2').failActivation('units', { onlyVersion: 'v3' });
  const r = await nixfleet(['deploy', '--fleet', s.fleetFile({ revert: 'commit', rollbackHosts: true }), '--pr', String(pr.number)]);
  expect({ code: r.code, err: r.err }).toEqual({ code: EXIT.failedRolledBack, err: '' });
  expect(r.out).toMatch(/c2\s+switching\s+→ failed/);
  expect(r.out).toMatch(/c1\s+rolling-back\s+→ rolled-back/);
  expect(r.out).toMatch(/c3\s+nixos\s+not-attempted/);
  expect(r.out).toMatch(/revert: commit [0-9a-f]{40}/);
  // The failed deployment holds the fleet until an operator closes it.
  const id = /started (\S+)/.exec(r.out)?.[1] as string;
  const dismissed = await nixfleet(['dismiss', id, '--reason', 'rolled back; fixing forward']);
  expect({ code: dismissed.code, err: dismissed.err }).toEqual({ code: EXIT.ok, err: '' });
  expect(dismissed.out).toMatch(/^dismissed/);
  expect((await nixfleet(['status', id], VIEWER)).code).toBe(EXIT.failedRolledBack);
});

test('when a deployment fails without compensation, then 12; a failed manual rollback 11; a completed one 10', async () => {
  const pr = await s.world.openLockUpdate('v4');
  s.world.fleet.host('c2').failActivation('units', { onlyVersion: 'v4' });
  const deployed = await nixfleet(['deploy', '--fleet', s.fleetFile({ revert: 'off', rollbackHosts: false }), '--pr', String(pr.number)]);
  expect({ code: deployed.code, out: deployed.out, err: deployed.err }).toMatchObject({ code: EXIT.failedNotRolledBack, err: '' });
  const id = /started (\S+)/.exec(deployed.out)?.[1] as string;

  const status = await nixfleet(['status', id], VIEWER);
  expect(status.code).toBe(EXIT.failedNotRolledBack);
  expect(status.out).toMatch(/c2\s+nixos\s+failed/);
  const json = await nixfleet(['status', id, '--json'], VIEWER);
  expect(json.code).toBe(EXIT.failedNotRolledBack);
  expect((JSON.parse(json.out) as DeploymentStatus).hosts.map((h) => h.state)).toEqual(['switched', 'failed', 'not-attempted']);
  // A page at a time (the API's bounded summary, then GET …/hosts?page): the counts, the page, the next.
  const paged = await nixfleet(['status', id, '--page-size', '2'], VIEWER);
  expect({ code: paged.code, err: paged.err }).toEqual({ code: EXIT.failedNotRolledBack, err: '' });
  expect(paged.out).toMatch(/^hosts: 3: 1 switched · 1 failed · 1 not-attempted$/m);
  expect(paged.out).toMatch(/c1\s+nixos\s+switched/);
  expect(paged.out).toMatch(/c2\s+nixos\s+failed/);
  expect(paged.out).not.toMatch(/c3\s/);
  expect(paged.out.trimEnd().split('\n').pop()).toBe('hosts 1–2 of 3 · page 1 of 2 (--page 2 for the next, --all for every host)');
  const page2 = await nixfleet(['status', id, '--page-size', '2', '--page', '2'], VIEWER);
  expect(page2.out).toMatch(/c3\s+nixos\s+not-attempted/);
  expect(page2.out).not.toMatch(/c1\s+nixos/);
  expect(page2.out.trimEnd().split('\n').pop()).toBe('hosts 3–3 of 3 · page 2 of 2');
  const failedOnly = await nixfleet(['status', id, '--state', 'failed'], VIEWER);
  expect(failedOnly.out).toMatch(/c2\s+nixos\s+failed/);
  expect(failedOnly.out).not.toMatch(/c[13]\s+nixos/);
  expect(failedOnly.out.trimEnd().split('\n').pop()).toBe('hosts 1–1 of 1 in state failed · page 1 of 1');
  const pagedJson = JSON.parse((await nixfleet(['status', id, '--page', '1', '--json'], VIEWER)).out) as { summary: { hosts: { total: number } }; page: { hosts: unknown[] } };
  expect({ total: pagedJson.summary.hosts.total, shown: pagedJson.page.hosts.length }).toEqual({ total: 3, shown: 3 });
  for (const bad of [['--page', '0'], ['--page-size', '501'], ['--state', 'bogus'], ['--all', '--page', '2']]) {
    const r = await nixfleet(['status', id, ...bad], VIEWER);
    expect({ bad, code: r.code }).toEqual({ bad, code: EXIT.usage });
  }

  // No terminal to confirm on, no --yes: nothing happens.
  const unconfirmed = await nixfleet(['rollback', id]);
  expect(unconfirmed.code).toBe(EXIT.error);
  expect(unconfirmed.out).toContain('Roll back c2 (failed) from generation');
  expect(unconfirmed.out).toContain('Roll back c1 (switched) from generation');
  expect(unconfirmed.err).toContain('cancelled; nothing was changed');
  // A viewer cannot roll back.
  const viewer = await nixfleet(['rollback', id, '--yes'], VIEWER);
  expect(viewer.code).toBe(EXIT.error);
  expect(viewer.err).toMatch(/403/);

  // c1's old generation now fails to activate too: its rollback fails.
  s.world.fleet.host('c1').failActivation('script');
  const incomplete = await nixfleet(['rollback', id, '--yes']);
  expect({ code: incomplete.code, out: incomplete.out }).toMatchObject({ code: EXIT.failedRollbackIncomplete });
  // Every transition of the rollback, once and in order, however quickly a host passed through a state.
  expect(transitionLines(incomplete.out)).toEqual(['c2 failed → rolling-back', 'c2 rolling-back → rolled-back', 'c1 switched → rolling-back', 'c1 rolling-back → rollback-failed']);
  expect((await nixfleet(['status', id], VIEWER)).code).toBe(EXIT.failedRollbackIncomplete);

  s.world.fleet.host('c1').failActivation(false);
  const complete = await nixfleet(['rollback', id, '--yes']);
  expect({ code: complete.code, out: complete.out }).toMatchObject({ code: EXIT.failedRolledBack });
  expect(complete.out).toMatch(/c1\s+nixos\s+rolled-back/);

  const audit = await nixfleet(['audit', id], VIEWER);
  expect(audit.code).toBe(EXIT.ok);
  expect(audit.out.split('\n').filter((l) => /olga\s+revert-and-rollback/.test(l))).toHaveLength(2);
  // Closed now: dismissing is refused (409), and says why.
  const dismiss = await nixfleet(['dismiss', id]);
  expect(dismiss.code).toBe(EXIT.error);
  expect(dismiss.err).toMatch(/\(409\)/);
});

test('deploy --dry-run prints the plan (waves, generations now, the commands) and touches nothing', async () => {
  const pr = await s.world.openLockUpdate('v9');
  const logsBefore = Object.fromEntries(['c1', 'c2', 'c3'].map((h) => [h, s.world.fleet.host(h).commandLog().length]));
  const r = await nixfleet(['deploy', '--dry-run', '--fleet', s.fleetFile({ revert: 'commit', rollbackHosts: true }), '--pr', String(pr.number)]);
  expect({ code: r.code, err: r.err }).toEqual({ code: EXIT.ok, err: '' });
  expect(r.out).toMatch(/dry run of deploy-\S+\.pr\d+: nothing is merged, built or switched/);
  expect(r.out).toMatch(/wave all \(1 at a time\)/);
  expect(r.out).toMatch(/c1\s+nixos\s+root@127\.0\.0\.\d+:\d+\s+generation now: \d+/);
  expect(r.out).toMatch(/\$ \{ exec nix build --no-link --json '.*rev=<merge-sha>#nixosConfigurations\."c2"\.config\.system\.build\.toplevel'/);
  for (const h of ['c1', 'c2', 'c3']) expect(s.world.fleet.host(h).commandLog().length).toBe(logsBefore[h]);
  expect(s.world.github.pulls(s.world.owner, s.world.repo).find((p) => p.number === pr.number)?.merged).toBe(false);
  // A viewer may not make the deployer reach every host.
  expect((await nixfleet(['deploy', '--dry-run', '--fleet', s.fleetFile({ revert: 'commit', rollbackHosts: true }), '--pr', String(pr.number)], VIEWER)).code).toBe(EXIT.error);
});

// Issue 12, bug 3: a revert that conflicts (flake.lock edited after the merge) left the merge on the
// branch, yet the outcome said failed-rolled-back and the CLI exited 10.
test('when the revert conflicts while every host is rolled back, then the outcome says the revert failed and the CLI exits 11', async () => {
  const pr = await s.world.openLockUpdate('v6');
  s.world.fleet.host('c2').failActivation('units', { onlyVersion: 'v6' });
  const deployed = await nixfleet(['deploy', '--fleet', s.fleetFile({ revert: 'off', rollbackHosts: false }), '--pr', String(pr.number)]);
  expect(deployed.code).toBe(EXIT.failedNotRolledBack);
  const id = /started (\S+)/.exec(deployed.out)?.[1] as string;
  // Someone edits flake.lock on the branch after the merge: the revert cannot restore it for them.
  await s.world.github.pushCommit(s.world.owner, s.world.repo, s.world.branch, { 'flake.lock': '{"edited":"after the merge"}\n' }, 'flake.lock: hand edit');

  const r = await nixfleet(['rollback', id, '--yes']);
  expect(r.out).toMatch(/c2\s+rolling-back\s+→ rolled-back/);
  expect(r.out).toMatch(/c1\s+rolling-back\s+→ rolled-back/);
  expect(r.out).toMatch(/revert failed: .*flake\.lock/);
  expect(r.code).toBe(EXIT.failedRollbackIncomplete);
  const status = await nixfleet(['status', id, '--json'], VIEWER);
  expect(status.code).toBe(EXIT.failedRollbackIncomplete);
  const st = JSON.parse(status.out) as DeploymentStatus;
  expect(st.outcome).toBe('failed-revert-failed');
  expect(st.revert).toMatchObject({ kind: 'failed', conflict: true });
  expect(st.hosts.map((h) => h.state)).toEqual(['rolled-back', 'rolled-back', 'not-attempted']);
  // The revert is still open to the operator (after fixing the conflict by hand).
  expect((await s.call<{ allowed: string[] }>('GET', `/api/deployments/${id}/rollback-preview`)).body.allowed).toContain('revert');
});
