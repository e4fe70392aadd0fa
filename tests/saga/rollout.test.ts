/**
 * Rollout safety on the real stack: build first, canary and waves with a failure budget, held hosts,
 * health checks, tolerated failed units, quarantine of a reverted commit, one deployment per fleet.
 */
import { createServer, type Server } from 'node:http';
import { fleetFlakeLock } from '../../testkit/fleet';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { dryRunWorkflow } from '../../workflows';
import { logins, profileMoves, revertCommits, saveHistory, startDeployment, waitPhase, sagaHarness } from '../support/saga';
import type { World } from '../../testkit/world';
import { waitFor } from '../support/temporal';

const stack = sagaHarness();

const nixos = (...names: string[]) => names.map((name) => ({ name, kind: 'nixos' as const }));
const generationsOf = (w: World) => Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));

test('when a host fails to build in the build-first phase, then no host is switched and the merge is reverted', async () => {
  const w = (await stack.world({ hosts: nixos('b1', 'b2', 'b3') }));
  const before = generationsOf(w);
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('b2').failBuild(true);
  await stack.withWorker(w, 'build-first', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, manualWindowSeconds: 0, rollout: { buildFirst: true } });
    const s = await handle.result();
    expect(s.failure).toMatch(/the build failed on b2; no host was switched/);
    expect(s.hosts.map((h) => h.state)).toEqual(['not-attempted', 'not-attempted', 'not-attempted']);
    for (const h of ['b1', 'b2', 'b3']) {
      expect(profileMoves(w, h)).toEqual({ set: 0, switchGeneration: 0, activations: 0 });
      expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
    }
    expect(await revertCommits(w, s.mergeSha as string)).toHaveLength(1);
    expect(s.outcome).toBe('failed-rolled-back');
    await saveHistory(handle, 'build-first-fails');
    await saveHistory(stack.t.client.workflow.getHandle(`${handle.workflowId}-build`), 'build-first-fails-build');
  });
});

test('when failures in the last wave exceed the budget, then the deployment halts and every wave is rolled back; a held host is never contacted', async () => {
  const w = (await stack.world({ hosts: nixos('c1', 'd1', 'd2', 's1', 's2', 's3', 'hold1') }));
  const before = generationsOf(w);
  const pr = await w.openLockUpdate('v2');
  for (const h of ['d2', 's2', 's3']) w.fleet.host(h).failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'waves-budget', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, {
      pr: pr.number,
      rollout: {
        waves: [
          { name: 'canary', hosts: ['c1'], bake: 1 },
          { name: 'desktops', hosts: ['d1', 'd2'], maxParallel: 2 },
          { name: 'servers', hosts: ['s1', 's2', 's3'], maxParallel: 3 },
        ],
        failureBudget: 1,
        hold: ['hold1'],
        buildFirst: true,
      },
    });
    const s = await waitPhase(handle, ['awaiting-operator'], 120_000);
    // d2 failed within the budget and was rolled back at once; s2 and s3 took it over the budget.
    expect(s.waves?.map((x) => `${x.name}:${x.state}`)).toEqual(['canary:done', 'desktops:done', 'servers:halted']);
    expect(s.failure).toMatch(/over the failure budget of 1/);
    expect(Object.fromEntries(s.hosts.map((h) => [h.name, h.state]))).toEqual({
      c1: 'rolled-back',
      d1: 'rolled-back',
      d2: 'rolled-back',
      s1: 'rolled-back',
      s2: 'rolled-back',
      s3: 'rolled-back',
      hold1: 'held',
    });
    for (const h of ['c1', 'd1', 'd2', 's1', 's2', 's3']) {
      expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
      expect(w.fleet.host(h).currentSystem()).toBe(before[h]!.storePath);
      expect(profileMoves(w, h)).toMatchObject({ set: 1, switchGeneration: 1 });
    }
    expect(logins(w, 'hold1')).toBe(0);
    // The canary baked before the desktops started.
    const canaryDone = w.fleet.host('c1').commandLog().find((e) => e.tool === 'switch-to-configuration-exit')?.atMs ?? Infinity;
    const desktopsStart = Math.min(...['d1', 'd2'].flatMap((h) => w.fleet.host(h).commandLog().filter((e) => e.tool === 'nix-env').map((e) => e.atMs)));
    expect(desktopsStart - canaryDone).toBeGreaterThanOrEqual(1000);
    // Rolled back wave by wave in reverse: the servers (in parallel, any order), then d1, then the canary.
    const comp = s.audit.filter((a) => a.action === 'auto-compensate').map((a) => a.hosts);
    expect(comp[0]).toEqual(['d2']);
    expect(comp[1]?.slice(0, 3).sort()).toEqual(['s1', 's2', 's3']);
    expect(comp[1]?.slice(3)).toEqual(['d1', 'c1']);
    await saveHistory(handle, 'waves-budget');
  });
});

test('when a health check fails after the grace period, then it counts as a failed switch and the deployment compensates', async () => {
  const w = (await stack.world({ hosts: nixos('h1', 'h2', 'h3') }));
  const before = generationsOf(w);
  const probes: string[] = [];
  const server: Server = createServer((req, res) => {
    probes.push(req.url ?? '');
    res.statusCode = req.url === '/health/h2' ? 503 : 200;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const pr = await w.openLockUpdate('v2');
  try {
    await stack.withWorker(w, 'health', async (taskQueue) => {
      const handle = await startDeployment(stack.t, w, taskQueue, {
        pr: pr.number,
        manualWindowSeconds: 0,
        rollout: { healthChecks: [{ http: `http://127.0.0.1:${port}/health/{host}`, timeout: 5 }, { command: 'test -L /run/current-system' }], healthGrace: 2 },
      });
      const s = await handle.result();
      expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['h1:rolled-back', 'h2:rolled-back', 'h3:not-attempted']);
      expect(s.hosts[1]?.error).toMatch(/health check failed after 2s: GET http:\/\/127\.0\.0\.1:\d+\/health\/h2 answered 503/);
      // Retried through the grace period before giving up: the last check started after it, so there
      // were at least two however long one check takes on this machine.
      expect(probes.filter((p) => p === '/health/h2').length).toBeGreaterThanOrEqual(2);
      for (const h of ['h1', 'h2']) expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
      await saveHistory(handle, 'health-check-fails');
      await saveHistory(stack.t.client.workflow.getHandle(`${handle.workflowId}-wave-1`), 'health-check-fails-wave');
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('when policy tolerates failed units, then exit 4 is reported as a warning and the rollout goes on', async () => {
  const w = (await stack.world({ hosts: nixos('u1', 'u2') }));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('u1').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'tolerate-units', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, rollout: { failedUnits: 'tolerate' } });
    const s = await handle.result();
    expect(s.outcome).toBe('succeeded');
    expect(s.hosts.map((h) => h.state)).toEqual(['switched', 'switched']);
    expect(s.hosts[0]?.warning).toMatch(/exit 4: units failed to start \(tolerated by policy\)/);
    expect(w.fleet.host('u1').profileGeneration().number).toBe(43);
  });
});

test('a reverted commit is quarantined: deploying it again is refused without an override, and allowed with one', async () => {
  const w = (await stack.world({ hosts: nixos('q1', 'q2') }));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('q2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'quarantine', async (taskQueue) => {
    const first = await (await startDeployment(stack.t, w, taskQueue, { pr: pr.number, manualWindowSeconds: 0 })).result();
    const mergeSha = first.mergeSha as string;
    expect(await revertCommits(w, mergeSha)).toHaveLength(1);
    const movesBefore = profileMoves(w, 'q1');

    const again = await (await startDeployment(stack.t, w, taskQueue, { commit: mergeSha, manualWindowSeconds: 0 })).result();
    expect(again.outcome).toBe('refused');
    expect(again.failure).toMatch(new RegExp(`quarantined: commit ${mergeSha} was reverted on main by [0-9a-f]{40}`));
    expect(profileMoves(w, 'q1')).toEqual(movesBefore);
    expect(await revertCommits(w, mergeSha)).toHaveLength(1);

    w.fleet.host('q2').failActivation(false);
    const forced = await (await startDeployment(stack.t, w, taskQueue, { commit: mergeSha, manualWindowSeconds: 0, rollout: { allowQuarantined: true } })).result();
    expect(forced.outcome).toBe('succeeded');
    expect(w.fleet.host('q1').profileGeneration().number).toBe(43);
  });
});

test('one deployment per fleet: a second deployment while the first holds the fleet is refused and touches nothing', async () => {
  const w = (await stack.world({ hosts: nixos('l1', 'l2') }));
  const pr1 = await w.openLockUpdate('v2');
  const pr2 = await w.openLockUpdate('v3');
  w.fleet.host('l1').hangActivation(true);
  await stack.withWorker(w, 'fleet-lock', async (taskQueue) => {
    const first = await startDeployment(stack.t, w, taskQueue, { pr: pr1.number, manualWindowSeconds: 0 });
    await waitFor('l1 to be switching', () => (w.fleet.host('l1').commandLog().some((e) => e.tool === 'hang') ? true : undefined));
    const second = await (await startDeployment(stack.t, w, taskQueue, { pr: pr2.number, manualWindowSeconds: 0 })).result();
    expect(second.outcome).toBe('refused');
    expect(second.failure).toMatch(/another deployment holds acme\/fleet-\w+@main/);
    expect(second.mergeSha).toBeUndefined();
    expect(w.github.pulls(w.owner, w.repo).find((p) => p.number === pr2.number)?.merged).toBe(false);
    w.fleet.host('l1').hangActivation(false);
    expect((await first.result()).outcome).toBe('succeeded');
    // The lock went with the first deployment: the next one runs (a fresh update on top of the first).
    const pr3 = await w.openLockUpdate('v3');
    const third = await (await startDeployment(stack.t, w, taskQueue, { pr: pr3.number, manualWindowSeconds: 0 })).result();
    expect(third.outcome).toBe('succeeded');
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v3' }));
  });
});

test('a dry run shows the waves, the hosts, their generations now and the commands, and touches nothing', async () => {
  const w = (await stack.world({ hosts: [...nixos('r1', 'r2'), { name: 'rhm', kind: 'home-manager' as const, generations: [3, 4] }] }));
  const pr = await w.openLockUpdate('v2');
  await stack.withWorker(w, 'dry-run', async (taskQueue) => {
    const raw = { ...w.fleetFile(), rollout: { waves: [{ name: 'canary', hosts: ['r1'] }, { name: 'rest', hosts: ['r2'], maxParallel: 2 }], hold: ['rhm'] } };
    const input = buildDeployInput(parseWith(FleetFile, raw), { pullRequest: pr.number }, 'alice');
    const plan = await stack.t.client.workflow.execute(dryRunWorkflow, { taskQueue, workflowId: `${input.deploymentId}-dry-run`, args: [input] });
    expect(plan.waves.map((x) => [x.name, x.maxParallel, x.hosts.map((h) => [h.name, h.generationNow?.number])])).toEqual([
      ['canary', 1, [['r1', 42]]],
      ['rest', 2, [['r2', 42]]],
    ]);
    expect(plan.held).toEqual(['rhm']);
    expect(plan.flakeRef).toContain('rev=<merge-sha>');
    expect(plan.waves[0]?.hosts[0]?.commands).toEqual([
      expect.stringMatching(/^\{ exec nix build --no-link --json 'git\+http:\/\/127\.0\.0\.1:\d+\/git\/acme\/fleet-\w+\.git\?ref=main&rev=<merge-sha>#nixosConfigurations\."r1"\.config\.system\.build\.toplevel'; \} 9>\/run\/nixfleet-build\.lock$/),
      "nix-env -p '/nix/var/nix/profiles/system' --set '<target>'",
      "{ flock -n 9 || exit 75; exec '<target>'/bin/switch-to-configuration switch; } 9>/run/nixfleet-activation.lock",
    ]);
    // Nothing merged, built, moved or activated.
    expect(w.github.pulls(w.owner, w.repo).find((p) => p.number === pr.number)?.merged).toBe(false);
    for (const h of ['r1', 'r2', 'rhm']) expect(w.fleet.host(h).commandLog()).toEqual([]);
    expect(logins(w, 'rhm')).toBe(0);
  });
});

test('a dry run with closureDiff says what each host would change (nix store diff-closures on the host), built at the pull request head, and moves no profile', async () => {
  const w = await stack.world({ hosts: [...nixos('d1'), { name: 'dhm', kind: 'home-manager' as const, generations: [3, 4] }, ...nixos('d2')], initialVersion: '1.0' });
  const pr = await w.openLockUpdate('2.0');
  const before = generationsOf(w);
  w.fleet.host('d2').failBuild(true);
  await stack.withWorker(w, 'dry-run-diff', async (taskQueue) => {
    const input = buildDeployInput(parseWith(FleetFile, w.fleetFile()), { pullRequest: pr.number }, 'alice');
    const plan = await stack.t.client.workflow.execute(dryRunWorkflow, { taskQueue, workflowId: `${input.deploymentId}-dry-run-diff`, args: [input, { closureDiff: true }] });
    expect(plan.diffedAt).toEqual({ sha: pr.headSha, source: 'pull-request-head' });
    const hosts = Object.fromEntries(plan.waves.flatMap((x) => x.hosts).map((h) => [h.name, h]));
    // d1: the seeded generation (nixos-system-d1-seed 42) goes, the pull request's system (2.0) comes.
    const d1 = hosts.d1?.closureDiff;
    expect(hosts.d1?.closureDiffError).toBeUndefined();
    expect(d1?.from).toBe(before.d1?.storePath);
    expect(d1?.to).toMatch(/^\/nix\/store\/[0-9a-z]{32}-nixos-system-d1-2\.0$/);
    expect(d1?.changes).toEqual([
      { name: 'nixos-system-d1', from: [], to: ['2.0'], kind: 'added' },
      { name: 'nixos-system-d1-seed', from: ['42'], to: [], kind: 'removed' },
    ]);
    expect({ added: d1?.added, removed: d1?.removed, upgraded: d1?.upgraded }).toEqual({ added: 1, removed: 1, upgraded: 0 });
    expect(d1?.sizeDeltaBytes).toBe((d1?.toClosureBytes ?? 0) - (d1?.fromClosureBytes ?? 0));
    expect(d1?.fromClosureBytes).toBeGreaterThan(0);
    // Home Manager: its activation package, against its generation now.
    expect(hosts.dhm?.closureDiff?.from).toBe(before.dhm?.storePath);
    expect(hosts.dhm?.closureDiff?.to).toMatch(/-home-manager-generation$/);
    // A host whose build fails says so; the others are still diffed.
    expect(hosts.d2?.closureDiff).toBeUndefined();
    expect(hosts.d2?.closureDiffError).toMatch(/d2: evaluation or build failed/);
    // Built at the pull request's head, diffed on the host, and nothing else: no profile moved, nothing merged.
    for (const h of ['d1', 'dhm']) {
      expect(profileMoves(w, h)).toEqual({ set: 0, switchGeneration: 0, activations: 0 });
      expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
      const builds = w.fleet.host(h).commandLog().filter((e) => e.tool === 'nix');
      expect(builds.length).toBeGreaterThan(0);
      for (const b of builds) expect(b.args.join(' ')).toContain(`rev=${pr.headSha}`);
    }
    expect(w.github.pulls(w.owner, w.repo).find((p) => p.number === pr.number)?.merged).toBe(false);
  });
});

test('connectivity confirmation: a reachable host confirms over a new connection and its self-rollback timer is stopped', async () => {
  const w = (await stack.world({ hosts: nixos('m1', 'm2') }));
  const pr = await w.openLockUpdate('v2');
  await stack.withWorker(w, 'confirm-ok', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, rollout: { confirmTimeout: 20 } });
    const s = await handle.result();
    expect(s.outcome).toBe('succeeded');
    for (const h of ['m1', 'm2']) {
      const log = w.fleet.host(h).commandLog();
      expect(log.some((e) => e.tool === 'systemd-run-timer' && e.args[1] === '20')).toBe(true);
      expect(log.some((e) => e.tool === 'systemctl' && e.args[0] === 'stop')).toBe(true);
      expect(log.some((e) => e.tool === 'timer-fired')).toBe(false);
      expect(w.fleet.host(h).profileGeneration().number).toBe(43);
      // Activation plus confirmation took two logins: the confirmation came over a new connection.
      expect(logins(w, h)).toBeGreaterThanOrEqual(2);
    }
  });
});

test('connectivity confirmation: a host whose link is cut right after activation rolls itself back, and the workflow reports it', async () => {
  const w = (await stack.world({ hosts: nixos('x1', 'x2', 'x3') }));
  const before = generationsOf(w);
  const pr = await w.openLockUpdate('v2');
  const x2 = w.fleet.host('x2');
  x2.hangActivation(true);
  await stack.withWorker(w, 'confirm-cut', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, rollout: { confirmTimeout: 3 } });
    await waitFor('x2 to be activating', () => (x2.commandLog().some((e) => e.tool === 'hang') ? true : undefined), 60_000);
    await x2.cutLink();
    x2.hangActivation(false);
    // The host, cut off, rolls itself back when its timer fires.
    await waitFor('x2 to roll itself back', () => (x2.commandLog().some((e) => e.tool === 'timer-done') ? true : undefined), 60_000);
    expect(x2.profileGeneration()).toEqual({ number: 42, storePath: before.x2!.storePath });
    expect(x2.currentSystem()).toBe(before.x2!.storePath);
    await x2.restoreLink();

    const s = await waitPhase(handle, ['awaiting-operator'], 120_000);
    const x2s = s.hosts.find((x) => x.name === 'x2');
    expect(x2s?.state).toBe('failed');
    expect(x2s?.error).toMatch(/not switched again: an earlier attempt switched to generation 43 .* its recorded generation: it was rolled back \(by itself/);
    expect(s.hosts.map((x) => `${x.name}:${x.state}`)).toEqual(['x1:rolled-back', 'x2:failed', 'x3:not-attempted']);
    // Exactly one switch on x2 (no second attempt after it rolled itself back), and it stays on 42.
    expect(profileMoves(w, 'x2').set).toBe(1);
    expect(x2.profileGeneration()).toEqual({ number: 42, storePath: before.x2!.storePath });
    expect(w.fleet.host('x1').profileGeneration()).toEqual(before.x1);
    await saveHistory(handle, 'confirm-cut-link');
  });
});

test('a wave larger than hostsPerChild runs as several child workflows in turn, so each history stays small', async () => {
  const w = await stack.world({ hosts: nixos('g1', 'g2', 'g3') });
  const pr = await w.openLockUpdate('v2');
  await stack.withWorker(w, 'hosts-per-child', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, rollout: { hostsPerChild: 2 } });
    const s = await handle.result();
    expect(s.outcome).toBe('succeeded');
    expect(s.hosts.map((x) => x.state)).toEqual(['switched', 'switched', 'switched']);
    const first = await stack.t.client.workflow.getHandle(`${handle.workflowId}-wave-1`).result();
    const second = await stack.t.client.workflow.getHandle(`${handle.workflowId}-wave-1-2`).result();
    expect([first.attempted, second.attempted]).toEqual([['g1', 'g2'], ['g3']]);
  });
});
