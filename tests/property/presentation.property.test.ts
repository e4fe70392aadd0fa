/**
 * src/domain/presentation.ts: the generation trail (where a host has been and is now), the tone of an
 * outcome (a failed one is never green) and Temporal Web's summary and details. Unit cases, then
 * fast-check for the invariants.
 */
import fc from 'fast-check';
import type { DeployInput, DeploymentOutcome, DeploymentStatus, HostState, HostStatus } from '../../src/domain/deployment';
import { deploymentCurrentDetails, deploymentSummary, generationTrail, outcomeTone } from '../../src/domain/presentation';

const g = (number: number) => ({ number, storePath: `/nix/store/${'a'.repeat(32)}-system-${number}` });

test('the trail shows where each host is now', () => {
  expect(generationTrail({ state: 'pending', before: g(42) })).toBe('42');
  expect(generationTrail({ state: 'not-attempted' })).toBe('–');
  expect(generationTrail({ state: 'switching', before: g(42) })).toBe('42 → …');
  expect(generationTrail({ state: 'switched', before: g(42), after: g(43) })).toBe('42 → 43');
  // Failed on the new generation (activation, exit 4) vs. before the profile moved (build failed).
  expect(generationTrail({ state: 'failed', before: g(42), after: g(43) })).toBe('42 → 43');
  expect(generationTrail({ state: 'failed', before: g(42) })).toBe('42');
  expect(generationTrail({ state: 'rolling-back', before: g(42), after: g(43) })).toBe('42 → 43 → …');
  expect(generationTrail({ state: 'rolled-back', before: g(42), after: g(43) })).toBe('42 → 43 → 42');
  // The recorded link was collected: the rollback made the recorded system a new generation.
  expect(generationTrail({ state: 'rolled-back', before: g(42), after: g(43), now: g(44) })).toBe('42 → 43 → 44');
  expect(generationTrail({ state: 'rollback-failed', before: g(42), after: g(43) })).toBe('42 → 43 → ?');
});

const states: HostState[] = ['pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed'];
const gen = fc.option(fc.integer({ min: 1, max: 100_000 }).map(g), { nil: undefined });

test('property: the trail starts where the host was and ends where it is now', () => {
  fc.assert(
    fc.property(fc.constantFrom(...states), gen, gen, (state, before, after) => {
      const h: Pick<HostStatus, 'state' | 'before' | 'after'> = { state, ...(before ? { before } : {}), ...(after ? { after } : {}) };
      const parts = generationTrail(h).split(' → ');
      expect(parts[0]).toBe(before ? String(before.number) : '–');
      const last = parts[parts.length - 1];
      if (state === 'switched') expect(last).toBe(after ? String(after.number) : '?');
      if (state === 'rolled-back') expect(last).toBe(before ? String(before.number) : '–');
      if (state === 'rollback-failed') expect(last).toBe('?');
      if (state === 'switching' || state === 'rolling-back') expect(last).toBe('…');
      if (['pending', 'held', 'not-attempted'].includes(state)) expect(parts).toHaveLength(1);
    }),
  );
});

const outcomes: DeploymentOutcome[] = ['succeeded', 'succeeded-with-failures', 'refused', 'failed-rolled-back', 'failed-rollback-incomplete', 'failed-revert-failed', 'failed-not-rolled-back', 'failed-dismissed'];

test('a failed outcome is never ok (green); only a success is', () => {
  for (const o of outcomes) {
    const tone = outcomeTone(o);
    if (o.startsWith('failed')) expect(tone === 'warn' || tone === 'bad').toBe(true);
    expect(tone === 'ok').toBe(o === 'succeeded');
  }
  expect(outcomeTone('failed-rolled-back')).toBe('warn');
  expect(outcomeTone('failed-rollback-incomplete')).toBe('bad');
  fc.assert(fc.property(fc.string(), (s) => (s.startsWith('failed') ? expect(outcomeTone(s)).not.toBe('ok') : undefined)));
});

function input(hosts: number, over: Partial<DeployInput> = {}): DeployInput {
  const names = Array.from({ length: hosts }, (_, i) => `h${i}`);
  return {
    deploymentId: 'deploy-acme.fleet.pr42',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 42, expectedHeadSha: 'abcdef0123456789'.padEnd(40, '0') },
    hosts: names.map((name) => ({ name, address: `${name}.example.net`, port: 22, user: 'root', kind: 'nixos' as const, attr: name })),
    flakeRefTemplate: 'github:{owner}/{repo}/{sha}',
    onFailure: { revert: 'commit', rollbackHosts: true },
    manualWindowSeconds: 86_400,
    requestedBy: 'olga',
    searchAttributes: false,
    ...over,
  };
}

test("Temporal Web's summary is one line naming the change and the host count; the details list the waves, capped", () => {
  const { summary, details } = deploymentSummary(input(12));
  expect(summary).toBe('flake.lock update acme/fleet@main · PR #42 (head abcdef012345) · 12 hosts');
  expect(details.split('\n')[0]).toBe('**acme/fleet@main**: PR #42 (head abcdef012345), requested by olga');
  expect(details).toContain('- all: h0, h1, h2');
  expect(details).toContain('On failure: revert commit, roll back hosts yes; failure budget 0; manual window 24h');

  const big = input(5000, {
    change: { kind: 'commit', sha: 'f'.repeat(40) },
    rollout: {
      waves: [
        { name: 'canary', hosts: ['h0'], maxParallel: 1, bakeSeconds: 600 },
        { name: 'rest', hosts: Array.from({ length: 4998 }, (_, i) => `h${i + 1}`), maxParallel: 50, bakeSeconds: 0 },
      ],
      failureBudget: 3,
      held: ['h4999'],
      buildFirst: true,
      failedUnits: 'fatal',
      healthChecks: [],
      healthGraceSeconds: 0,
      allowQuarantined: false,
      confirmTimeoutSeconds: 0,
    },
  });
  const b = deploymentSummary(big);
  expect(b.summary).toBe(`flake.lock update acme/fleet@main · commit ${'f'.repeat(12)} · 4999 hosts (1 held)`);
  expect(b.details).toContain('- canary: h0 · bake 10m');
  expect(b.details).toContain('… and 4968 more · 50 at a time');
  expect(b.details).toContain('Held back: h4999');
  expect(b.details.length).toBeLessThan(2000);
});

test('the current details say where the deployment stands, and where it halted', () => {
  const host = (name: string, state: HostState): HostStatus => ({ name, kind: 'nixos', state });
  const s: DeploymentStatus = {
    deploymentId: 'd',
    phase: 'awaiting-operator',
    outcome: 'failed-not-rolled-back',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 1 },
    mergeSha: 'c'.repeat(40),
    hosts: [host('a', 'switched'), host('b', 'failed'), host('c', 'not-attempted'), host('d', 'held')],
    failedHost: 'b',
    audit: [],
  };
  expect(deploymentCurrentDetails(s)).toBe(`awaiting-operator · failed-not-rolled-back · 1/3 switched, 1 failed, 1 not-attempted · halted at b · merge ${'c'.repeat(12)}`);
  expect(deploymentCurrentDetails({ ...s, phase: 'deploying', outcome: undefined, failedHost: undefined, mergeSha: undefined, waves: [{ name: 'canary', hosts: ['a'], state: 'baking' }] })).toBe(
    'deploying · wave canary (baking) · 1/3 switched, 1 failed, 1 not-attempted',
  );
});
