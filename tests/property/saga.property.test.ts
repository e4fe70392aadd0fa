/**
 * The saga's rules (src/domain/saga.ts, src/domain/outcome.ts) over arbitrary sequences of host
 * events: each host is recorded or not, its switch succeeds, fails before or after its profile moved,
 * or loses the connection (then it may or may not have moved), and any number of rollback rounds
 * follow, each host's rollback succeeding or failing. The simulated host knows where it really is;
 * the rules only see what the deployment was told.
 */
import fc from 'fast-check';
import type { Generation, HostStatus, Phase, RevertOutcome } from '../../src/domain/deployment';
import { failedOutcome } from '../../src/domain/outcome';
import { allowedActions, deployOrder, preview, rejectReason, requestShapeError, revertAvailable, revertNeeded, rollbackCandidates, type SagaFacts } from '../../src/domain/saga';

const B: Generation = { number: 42, storePath: '/nix/store/before' };
const A: Generation = { number: 43, storePath: '/nix/store/after' };

type SwitchEvent = 'not-attempted' | 'record-failed' | 'switched' | 'failed-before-move' | 'failed-after-move' | 'lost-moved' | 'lost-not-moved';
const switchEvent = fc.constantFrom<SwitchEvent>('not-attempted', 'record-failed', 'switched', 'failed-before-move', 'failed-after-move', 'lost-moved', 'lost-not-moved');

interface SimHost {
  status: HostStatus;
  /** Where the host really is. */
  actual: Generation;
}

/** What the deployment is told about a host, as the wave reports it (wave.ts + hostChange). */
function deployHost(name: string, e: SwitchEvent): SimHost {
  const base = { name, kind: 'nixos' as const };
  switch (e) {
    case 'not-attempted':
      return { status: { ...base, state: 'not-attempted' }, actual: B };
    case 'record-failed':
      return { status: { ...base, state: 'failed', uncertain: 'the generation could not be recorded' }, actual: B };
    case 'switched':
      return { status: { ...base, state: 'switched', before: B, after: A }, actual: A };
    case 'failed-before-move':
      return { status: { ...base, state: 'failed', before: B, profileMoved: false }, actual: B };
    case 'failed-after-move':
      return { status: { ...base, state: 'failed', before: B, profileMoved: true, after: A }, actual: A };
    case 'lost-moved':
      return { status: { ...base, state: 'failed', before: B, uncertain: 'ConnectionLost' }, actual: A };
    case 'lost-not-moved':
      return { status: { ...base, state: 'failed', before: B, uncertain: 'ConnectionLost' }, actual: B };
  }
}

const same = (x: Generation, y: Generation): boolean => x.number === y.number && x.storePath === y.storePath;

/** One rollback round: every candidate's rollback succeeds (back on its recorded generation) or fails (stays where it is). */
function rollbackRound(hosts: SimHost[], f: SagaFacts, succeeds: boolean[]): void {
  rollbackCandidates(f).forEach((h, i) => {
    const sim = hosts.find((s) => s.status === h) as SimHost;
    if (succeeds[i % Math.max(1, succeeds.length)] ?? true) {
      sim.actual = h.before as Generation;
      h.state = 'rolled-back';
      h.uncertain = undefined;
    } else {
      h.state = 'rollback-failed';
      h.error = 'rollback failed';
    }
  });
}

const scenario = fc.record({
  events: fc.array(switchEvent, { minLength: 1, maxLength: 8 }),
  rounds: fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), { maxLength: 3 }),
  revert: fc.option(fc.constantFrom<RevertOutcome>({ kind: 'commit', commitSha: 'c'.repeat(40), alreadyReverted: false }, { kind: 'failed', error: 'conflict', conflict: true }), { nil: undefined }),
  ownMerge: fc.boolean(),
  waves: fc.integer({ min: 1, max: 3 }),
});

function build(s: { events: SwitchEvent[]; waves: number }): { hosts: SimHost[]; order: ReturnType<typeof deployOrder> } {
  const names = s.events.map((_, i) => `h${i}`);
  const perWave = Math.ceil(names.length / s.waves);
  const waves = Array.from({ length: s.waves }, (_, w) => ({ name: `w${w}`, hosts: names.slice(w * perWave, (w + 1) * perWave), maxParallel: 1, bakeSeconds: 0 }));
  return { hosts: s.events.map((e, i) => deployHost(names[i] as string, e)), order: deployOrder({ waves }) };
}

test('property: no outcome says rolled back while a host is on another generation than its recorded one', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const { hosts, order } = build(s);
      const facts = (): SagaFacts => ({ phase: 'awaiting-operator', hosts: hosts.map((h) => h.status), order, mergeSha: 'm'.repeat(40), revert: s.revert, ownMerge: s.ownMerge, scope: 'deployment', busy: false });
      for (const round of s.rounds) rollbackRound(hosts, facts(), round);
      const f = facts();
      const candidates = rollbackCandidates(f);
      // Every host off its recorded generation is one the rollback still touches.
      for (const h of hosts) if (h.status.before && !same(h.actual, h.status.before)) expect(candidates).toContain(h.status);
      // A host never recorded was never switched: it is where it was.
      for (const h of hosts) if (!h.status.before) expect(same(h.actual, B)).toBe(true);
      const outcome = failedOutcome({ hosts: f.hosts, rollbackCandidates: candidates.length, revert: f.revert });
      if (outcome === 'failed-rolled-back') {
        for (const h of hosts) expect(same(h.actual, B)).toBe(true);
        expect(f.revert?.kind).not.toBe('failed');
      }
    }),
    { numRuns: 1500 },
  );
});

test('property: the rollback goes in reverse deployment order, and the preview lists exactly those hosts', () => {
  fc.assert(
    fc.property(scenario, fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6, 7]), (s, perm) => {
      const { hosts, order } = build(s);
      // The status lists hosts in any order: the rollout's order decides.
      const listed = perm.filter((i) => i < hosts.length).map((i) => (hosts[i] as SimHost).status);
      const f: SagaFacts = { phase: 'awaiting-operator', hosts: listed, order, mergeSha: 'm'.repeat(40), ownMerge: s.ownMerge, scope: 'deployment', busy: false };
      const c = rollbackCandidates(f);
      for (let i = 1; i < c.length; i++) expect(order.get((c[i - 1] as HostStatus).name) as number).toBeGreaterThan(order.get((c[i] as HostStatus).name) as number);
      expect(preview(f).hosts.map((h) => h.name)).toEqual(c.map((h) => h.name));
    }),
  );
});

test('property: within the failure budget, only failed hosts are candidates and nothing is reverted', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const { hosts, order } = build(s);
      const f: SagaFacts = { phase: 'awaiting-operator', hosts: hosts.map((h) => h.status), order, mergeSha: 'm'.repeat(40), revert: s.revert, ownMerge: s.ownMerge, scope: 'failed-hosts', busy: false };
      for (const h of rollbackCandidates(f)) expect(h.state).not.toBe('switched');
      expect(revertNeeded(f)).toBe(false);
      expect(allowedActions(f)).not.toContain('revert');
    }),
  );
});

test('property: a commit deploy (not our merge) is never reverted by the compensation', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const { hosts, order } = build(s);
      const f: SagaFacts = { phase: 'compensating', hosts: hosts.map((h) => h.status), order, mergeSha: 'm'.repeat(40), revert: s.revert, ownMerge: false, scope: 'deployment', busy: false };
      expect(revertNeeded(f)).toBe(false);
      // The operator may still ask for it while it is not reverted.
      expect(revertAvailable(f)).toBe(s.revert?.kind !== 'commit');
    }),
  );
});

const phase = fc.constantFrom<Phase>('starting', 'merging', 'building', 'deploying', 'baking', 'succeeded', 'compensating', 'awaiting-operator', 'rolling-back', 'closed');
const field = fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('revert', 'revert-and-rollback', 'dismiss', 'commit', 'pull-request', 'alice', '', ' ', 'x'.repeat(201)));
const request = fc.oneof(
  fc.record({ action: fc.constantFrom('revert', 'revert-and-rollback', 'dismiss'), requestedBy: fc.constantFrom('alice', 'bob') }),
  fc.record({ action: field, requestedBy: field, revertMode: field, reason: field }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 2 }),
);

test('property: a request is accepted exactly when its shape is valid, no rollback runs, and its action is allowed', () => {
  fc.assert(
    fc.property(scenario, phase, fc.boolean(), fc.constantFrom<SagaFacts['scope']>('deployment', 'failed-hosts'), request, (s, p, busy, scope, req) => {
      const { hosts, order } = build(s);
      for (const round of s.rounds.slice(0, 1)) rollbackRound(hosts, { phase: p, hosts: hosts.map((h) => h.status), order, ownMerge: s.ownMerge, scope, busy }, round);
      const f: SagaFacts = { phase: p, hosts: hosts.map((h) => h.status), order, mergeSha: 'm'.repeat(40), revert: s.revert, ownMerge: s.ownMerge, scope, busy };
      const reason = rejectReason(req, f);
      const action = (req as { action?: unknown } | null)?.action;
      const accepted = requestShapeError(req) === undefined && !busy && allowedActions(f).includes(action as never);
      expect(reason === undefined).toBe(accepted);
      if (reason !== undefined && requestShapeError(req) !== undefined) expect(reason).toMatch(/^(request must be an object|requestedBy: |action: |revertMode: |reason: )/);
      // Dismiss is allowed whenever anything is; nothing is allowed outside the manual window.
      if (p !== 'awaiting-operator') expect(allowedActions(f)).toEqual([]);
      else expect(allowedActions(f)).toContain('dismiss');
    }),
    { numRuns: 1500 },
  );
});
