/**
 * The simulated fleet against the reference: the real sshd + Nix stand-in (testkit/fleet, with the
 * shipped allowlist as the deployer key's forced command). The same deployment, on the real Temporal
 * dev server with the real worker and activities, runs on both; the host outcomes, the generations
 * each host ends with, and the allowlist verbs each host was sent must be the same.
 */
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import type { DeploymentStatus } from '../../src/domain/deployment';
import type { ActivityDeps } from '../../activities';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { startWorld } from '../../testkit/world';
import { startSimWorld } from '../../testkit/simfleet/world';
import { startTestTemporal, taskQueueFor, workflowBundle, type TestTemporal } from '../support/temporal';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

const HOSTS = [
  { name: 'c1', kind: 'nixos' as const, generations: [40, 41, 42] },
  { name: 'c2', kind: 'home-manager' as const, generations: [7, 8, 9] },
  { name: 'c3', kind: 'nixos' as const, generations: [40, 41, 42] },
  { name: 'c4', kind: 'nixos' as const, generations: [10, 12] },
];

interface Observed {
  outcome: DeploymentStatus['outcome'];
  failedHost: string | undefined;
  revert: string | undefined;
  hosts: Array<{ name: string; state: string; before?: number; after?: number; profileMoved?: boolean }>;
  generations: Record<string, { numbers: number[]; current: number; activeIsRecorded: boolean; bootDefault: number | null; activations: number }>;
  verbs: Record<string, string[]>;
}

interface AnyWorld {
  owner: string;
  repo: string;
  fleetFile(onFailure?: FleetFile['onFailure']): FleetFile;
  openLockUpdate(version: string): Promise<{ number: number }>;
  activityDeps(): ActivityDeps;
}

async function deploy(w: AnyWorld, title: string, rollout?: unknown, opts: { version?: string; onFailure?: FleetFile['onFailure'] } = {}): Promise<DeploymentStatus> {
  const pr = await w.openLockUpdate(opts.version ?? 'v2');
  const input = buildDeployInput(parseWith(FleetFile, { ...w.fleetFile(opts.onFailure), manualWindow: 0, ...(rollout ? { rollout } : {}) }), { pullRequest: pr.number }, 'alice');
  const taskQueue = taskQueueFor(title);
  const { worker, close } = await createDeployWorker({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, deps: w.activityDeps(), workflowBundle: await workflowBundle() });
  try {
    return await worker.runUntil(
      t.client.workflow.execute(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input], searchAttributes: { NixfleetRepository: [`${w.owner}/${w.repo}`] } }),
    );
  } finally {
    await close();
  }
}

function summary(s: DeploymentStatus): Omit<Observed, 'generations' | 'verbs'> {
  return {
    outcome: s.outcome,
    failedHost: s.failedHost,
    revert: s.revert?.kind,
    hosts: s.hosts.map((h) => ({
      name: h.name,
      state: h.state,
      ...(h.before ? { before: h.before.number } : {}),
      ...(h.after ? { after: h.after.number } : {}),
      ...(h.profileMoved !== undefined ? { profileMoved: h.profileMoved } : {}),
    })),
  };
}

test('when the same deployment (host 3 of 4 fails its switch with failed units) runs on the sshd stand-in and on the simulated fleet, then both give the same outcomes, generations and commands', async () => {
  // Reference: the real stand-in, the deployer's key restricted by the shipped allowlist.
  const prev = process.env.NIXFLEET_STANDIN_ALLOWLIST;
  process.env.NIXFLEET_STANDIN_ALLOWLIST = '1';
  const real = await startWorld({ hosts: HOSTS }).finally(() => {
    if (prev === undefined) delete process.env.NIXFLEET_STANDIN_ALLOWLIST;
    else process.env.NIXFLEET_STANDIN_ALLOWLIST = prev;
  });
  let fromReal: Observed;
  try {
    expect(real.fleet.hosts.every((h) => h.allowlisted)).toBe(true);
    const recorded = Object.fromEntries(real.fleet.hosts.map((h) => [h.name, h.profileGeneration().storePath]));
    real.fleet.host('c3').failActivation('units', { onlyVersion: 'v2' });
    const s = await deploy(real, 'matches-standin-real');
    fromReal = {
      ...summary(s),
      generations: Object.fromEntries(
        real.fleet.hosts.map((h) => [
          h.name,
          { numbers: h.generations().map((g) => g.number), current: h.profileGeneration().number, activeIsRecorded: h.currentSystem() === recorded[h.name], bootDefault: h.bootDefault()?.number ?? null, activations: h.activations().length },
        ]),
      ),
      verbs: Object.fromEntries(real.fleet.hosts.map((h) => [h.name, h.allowlistLog().map((l) => (l.verdict === 'deny' ? `deny:${l.command}` : l.verb))])),
    };
    expect(real.github.validationFailures).toEqual([]);
  } finally {
    await real.stop();
  }

  const sim = await startSimWorld({ hosts: HOSTS });
  let fromSim: Observed;
  try {
    const recorded = Object.fromEntries(sim.fleet.hosts.map((h) => [h.name, h.host.profileGeneration().storePath]));
    sim.fleet.host('c3').host.failActivation('units');
    const s = await deploy(sim, 'matches-standin-sim');
    fromSim = {
      ...summary(s),
      generations: Object.fromEntries(
        sim.fleet.hosts.map((e) => [
          e.name,
          { numbers: e.host.generations().map((g) => g.number), current: e.host.profileGeneration().number, activeIsRecorded: e.host.currentSystem() === recorded[e.name], bootDefault: e.host.bootDefault()?.number ?? null, activations: e.host.activations().length },
        ]),
      ),
      verbs: Object.fromEntries(sim.fleet.hosts.map((e) => [e.name, e.host.commandLog().map((l) => (l.verb === 'deny' ? `deny:${l.command}` : l.verb))])),
    };
    expect(sim.github.validationFailures).toEqual([]);
  } finally {
    await sim.stop();
  }

  // The scenario did what it says (so equality below is not two empty runs).
  expect(fromReal.outcome).toBe('failed-rolled-back');
  expect(fromReal.failedHost).toBe('c3');
  expect(fromReal.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['c1:rolled-back', 'c2:rolled-back', 'c3:rolled-back', 'c4:not-attempted']);
  expect(fromReal.verbs.c4).toEqual([]);
  expect(fromReal.verbs.c1).toContain('nix-env-switch-generation');

  expect(fromSim.hosts).toEqual(fromReal.hosts);
  expect(fromSim.generations).toEqual(fromReal.generations);
  expect(fromSim.verbs).toEqual(fromReal.verbs);
  expect(fromSim).toEqual(fromReal);
}, 600_000); // two deployments, one on each fleet: over a minute alone, several under load (jest's bound, not a timing assertion)

/** How long a host is down after a reboot in the reboot cases (both fleets). */
const DOWN_MS = 2_000;

test('when the same deployment with rollout.reboot: always runs on the sshd stand-in and on the simulated fleet, then both boot each NixOS host onto its new generation by one reboot, with the same outcomes, generations and commands', async () => {
  const hosts = [HOSTS[0], HOSTS[1]] as Array<(typeof HOSTS)[number]>;
  const rollout = { reboot: 'always', rebootTimeout: '2m' };
  // A probe may find the host still up on its old boot (the stand-in goes down a moment after
  // `systemctl reboot` returns): repeated boot-state reads count once.
  const squash = (verbs: string[]): string[] => verbs.filter((v, i) => !(v === 'read-boot' && verbs[i - 1] === 'read-boot'));
  const prev = process.env.NIXFLEET_STANDIN_ALLOWLIST;
  process.env.NIXFLEET_STANDIN_ALLOWLIST = '1';
  const real = await startWorld({ hosts }).finally(() => {
    if (prev === undefined) delete process.env.NIXFLEET_STANDIN_ALLOWLIST;
    else process.env.NIXFLEET_STANDIN_ALLOWLIST = prev;
  });
  let fromReal: unknown;
  try {
    // Healthy, with downtime: each host is unreachable for 2 s after its reboot, on both fleets.
    for (const h of real.fleet.hosts) h.rebootDownMs = DOWN_MS;
    const s = await deploy(real, 'matches-standin-reboot-real', rollout);
    fromReal = {
      ...summary(s),
      reboot: s.hosts.map((h) => h.reboot ?? null),
      generations: Object.fromEntries(real.fleet.hosts.map((h) => [h.name, { current: h.profileGeneration().number, bootedIsCurrent: h.kind === 'nixos' ? h.bootedSystem() === h.profileGeneration().storePath : null, reboots: h.reboots }])),
      verbs: Object.fromEntries(real.fleet.hosts.map((h) => [h.name, squash(h.allowlistLog().map((l) => (l.verdict === 'deny' ? `deny:${l.command}` : l.verb)))])),
    };
  } finally {
    await real.stop();
  }
  const sim = await startSimWorld({ hosts, rebootDownMs: DOWN_MS });
  let fromSim: unknown;
  try {
    expect(sim.fleet.hosts.every((e) => e.host.rebootDownMs === DOWN_MS)).toBe(true);
    const s = await deploy(sim, 'matches-standin-reboot-sim', rollout);
    fromSim = {
      ...summary(s),
      reboot: s.hosts.map((h) => h.reboot ?? null),
      generations: Object.fromEntries(sim.fleet.hosts.map((e) => [e.name, { current: e.host.profileGeneration().number, bootedIsCurrent: e.host.kind === 'nixos' ? e.host.bootedSystem() === e.host.profileGeneration().storePath : null, reboots: e.host.reboots }])),
      verbs: Object.fromEntries(sim.fleet.hosts.map((e) => [e.name, squash(e.host.commandLog().map((l) => (l.verb === 'deny' ? `deny:${l.command}` : l.verb)))])),
    };
  } finally {
    await sim.stop();
  }
  // The scenario did what it says: the NixOS host rebooted once onto generation 43, Home Manager switched.
  expect(fromReal).toMatchObject({ outcome: 'succeeded', generations: { c1: { current: 43, bootedIsCurrent: true, reboots: 1 } }, verbs: { c1: expect.arrayContaining(['switch-to-configuration-boot', 'reboot', 'read-boot']) } });
  expect(fromSim).toEqual(fromReal);
}, 600_000); // two deployments with a reboot each (jest's bound under load, not a timing assertion)

/** What a reboot fault leaves on a host, the same on both fleets: store paths and boot ids named, not spelled. */
interface RebootFaultObserved {
  outcome: DeploymentStatus['outcome'];
  hosts: Array<{ name: string; state: string; error?: string; uncertain?: string; reboot: unknown }>;
  host: { reboots: number; running: boolean; current: number; bootDefault: number | null; booted: 'recorded' | 'target' | 'other' | null };
  verbs: string[];
}

test('when the same reboot faults (boots the wrong generation; never comes back) happen on the sshd stand-in and on the simulated fleet, then both report the same host outcomes, leave the hosts the same way and send the same commands', async () => {
  const hosts = [HOSTS[0], HOSTS[1]] as Array<(typeof HOSTS)[number]>;
  const squash = (verbs: string[]): string[] => verbs.filter((v, i) => !(v === 'read-boot' && verbs[i - 1] === 'read-boot'));
  const paths = (text: string | undefined): string | undefined => text?.replace(/\/nix\/store\/[0-9a-z]{32}-[^\s)]+/g, '<store path>');
  /** One fleet's side: the wrong generation first, then (the host back on its recorded generation) never comes back. */
  interface Side {
    c1: { rebootDownMs: number; failNextBoot(f: 'never-comes-back' | 'wrong-generation' | null): void; reboots: number; running: boolean; profileGeneration(): { number: number; storePath: string }; bootDefault(): { number: number } | null; bootedSystem(): string | null; restart(): Promise<void> };
    verbs(): string[];
  }
  const run = async (w: AnyWorld, side: Side, title: string): Promise<RebootFaultObserved[]> => {
    const out: RebootFaultObserved[] = [];
    const cases = [
      { fault: 'wrong-generation' as const, rollout: { reboot: 'always', rebootTimeout: '2m' }, onFailure: { revert: 'off' as const, rollbackHosts: true }, version: 'v2' },
      { fault: 'never-comes-back' as const, rollout: { reboot: 'always', rebootTimeout: '8s' }, onFailure: { revert: 'off' as const, rollbackHosts: false }, version: 'v3' },
    ];
    for (const c of cases) {
      const recorded = side.c1.profileGeneration();
      const logged = side.verbs().length;
      side.c1.rebootDownMs = DOWN_MS;
      side.c1.failNextBoot(c.fault);
      const reboots = side.c1.reboots;
      const s = await deploy(w, `${title}-${c.fault}`, c.rollout, { version: c.version, onFailure: c.onFailure });
      const booted = side.c1.bootedSystem();
      out.push({
        outcome: s.outcome,
        hosts: s.hosts.map((h) => ({ name: h.name, state: h.state, ...(h.error ? { error: paths(h.error) } : {}), ...(h.uncertain ? { uncertain: paths(h.uncertain) } : {}), reboot: h.reboot ?? null })),
        host: {
          reboots: side.c1.reboots - reboots,
          running: side.c1.running,
          current: side.c1.profileGeneration().number - recorded.number,
          bootDefault: (side.c1.bootDefault()?.number ?? 0) - recorded.number,
          booted: booted === null ? null : booted === recorded.storePath ? 'recorded' : s.hosts[0]?.target && booted === s.hosts[0].target ? 'target' : 'other',
        },
        verbs: squash(side.verbs().slice(logged)),
      });
      if (!side.c1.running) await side.c1.restart();
    }
    return out;
  };

  const prev = process.env.NIXFLEET_STANDIN_ALLOWLIST;
  process.env.NIXFLEET_STANDIN_ALLOWLIST = '1';
  const real = await startWorld({ hosts }).finally(() => {
    if (prev === undefined) delete process.env.NIXFLEET_STANDIN_ALLOWLIST;
    else process.env.NIXFLEET_STANDIN_ALLOWLIST = prev;
  });
  let fromReal: RebootFaultObserved[];
  try {
    const c1 = real.fleet.host('c1');
    fromReal = await run(real, { c1, verbs: () => c1.allowlistLog().map((l) => (l.verdict === 'deny' ? `deny:${l.command}` : l.verb)) }, 'matches-standin-bootfault-real');
  } finally {
    await real.stop();
  }
  const sim = await startSimWorld({ hosts });
  let fromSim: RebootFaultObserved[];
  try {
    const e = sim.fleet.host('c1');
    fromSim = await run(sim, { c1: e.host, verbs: () => e.host.commandLog().map((l) => (l.verb === 'deny' ? `deny:${l.command}` : l.verb)) }, 'matches-standin-bootfault-sim');
  } finally {
    await sim.stop();
  }

  // The scenarios did what they say (so equality below is not two empty runs).
  const [wrong, never] = fromReal;
  expect(wrong).toMatchObject({ host: { reboots: 2, running: true, booted: 'recorded', current: 0, bootDefault: 0 }, hosts: [{ name: 'c1', error: expect.stringMatching(/set back to generation \d+ as the boot default and rebooted onto it/) }, { name: 'c2', state: 'not-attempted' }] });
  expect(never).toMatchObject({ host: { reboots: 1, running: false }, hosts: [{ name: 'c1', state: 'failed', error: expect.stringMatching(/did not come back within 8s of its reboot/), uncertain: expect.stringMatching(/did not come back/) }, { name: 'c2', state: 'not-attempted' }] });
  expect(fromSim[0]).toEqual(fromReal[0]);
  expect(fromSim[1]).toEqual(fromReal[1]);
}, 900_000); // four deployments, two on each fleet, two of them waiting out a reboot deadline (jest's bound under load, not a timing assertion)
