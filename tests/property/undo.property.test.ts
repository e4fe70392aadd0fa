import fc from 'fast-check';
import type { HostState } from '../../src/domain/deployment';
import { undoPlan, type DeploymentResults, type HostNow, type MergeState, type UndoFacts } from '../../src/domain/undo';

const STATES: HostState[] = ['switched', 'failed', 'not-attempted', 'held', 'rolled-back', 'rollback-failed'];
const path = (h: string, n: number) => `/nix/store/${h}-${n}`;

/** A deployment's results and where its hosts are now: on its generation, back, elsewhere, unreadable or gone. */
const world = fc
  .uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { minLength: 1, maxLength: 6 })
  .chain((names) =>
    fc.record({
      hosts: fc.tuple(...names.map((name) => fc.record({ name: fc.constant(name), state: fc.constantFrom(...STATES), where: fc.constantFrom('after', 'before', 'elsewhere', 'unreadable', 'gone') }))),
      forced: fc.subarray(names),
      outcome: fc.constantFrom('succeeded', 'succeeded-with-failures', 'failed-rolled-back', 'failed-dismissed' as const),
      ageHours: fc.integer({ min: 0, max: 24 * 30 }),
      retentionDays: fc.integer({ min: 1, max: 20 }),
      busy: fc.boolean(),
      merge: fc.constantFrom<MergeState>({ kind: 'on-branch' }, { kind: 'reverted' }, { kind: 'unknown', error: 'x' }),
      ownMerge: fc.boolean(),
    }),
  );

type World = typeof world extends fc.Arbitrary<infer T> ? T : never;

function factsOf(w: World): UndoFacts {
  const results: DeploymentResults = {
    deploymentId: 'd',
    runId: 'r',
    repository: 'o/r',
    branch: 'main',
    closedAt: '2026-12-01T00:00:00.000Z',
    outcome: w.outcome,
    mergeSha: 'a'.repeat(40),
    ownMerge: w.ownMerge,
    hosts: w.hosts.map((h) => ({ name: h.name, kind: 'nixos', state: h.state, before: { number: 1, storePath: path(h.name, 1) }, after: { number: 2, storePath: path(h.name, 2) } })),
  };
  const current: Record<string, HostNow> = {};
  for (const h of w.hosts) {
    if (h.where === 'gone') current[h.name] = { inFleet: false };
    else if (h.where === 'unreadable') current[h.name] = { inFleet: true, error: 'down' };
    else current[h.name] = { inFleet: true, generation: { number: 3, storePath: path(h.name, h.where === 'after' ? 2 : h.where === 'before' ? 1 : 9) } };
  }
  return {
    results,
    fleet: { repository: 'o/r', branch: 'main' },
    now: new Date(Date.parse(results.closedAt) + w.ageHours * 3600_000).toISOString(),
    retentionDays: w.retentionDays,
    ...(w.busy ? { fleetHeldBy: 'x' } : {}),
    current,
    forced: w.forced.filter((n) => w.hosts.find((h) => h.name === n)?.state === 'switched'),
    merge: w.merge,
  };
}

test('property: only hosts the deployment switched are undone; a host is undone exactly when it is on the deployment generation or was named (and is elsewhere); every host is either undone or listed, once', () => {
  fc.assert(
    fc.property(world, (w) => {
      const f = factsOf(w);
      const d = undoPlan(f);
      if (!d.ok) return;
      const undone = d.plan.hosts.map((h) => h.name);
      const listed = d.plan.skipped.map((s) => s.name);
      expect([...undone, ...listed].sort()).toEqual(w.hosts.map((h) => h.name).sort());
      for (const h of w.hosts) {
        const expected = h.state === 'switched' && (h.where === 'after' || (h.where === 'elsewhere' && f.forced.includes(h.name)));
        expect(undone.includes(h.name)).toBe(expected);
      }
      // Each goes back to its recorded generation, in the reverse of the deployment's order.
      for (const h of d.plan.hosts) expect(h.to.storePath).toBe(path(h.name, 1));
      const order: string[] = w.hosts.map((h) => h.name);
      expect(undone).toEqual([...undone].sort((a, b) => order.indexOf(b) - order.indexOf(a)));
    }),
  );
});

test('property: refused exactly when a rule says so, for the first reason that applies; never a plan with nothing to do', () => {
  fc.assert(
    fc.property(world, (w) => {
      const f = factsOf(w);
      const d = undoPlan(f);
      const successful = w.outcome === 'succeeded' || w.outcome === 'succeeded-with-failures';
      const within = w.ageHours <= w.retentionDays * 24;
      if (!successful) expect(d).toMatchObject({ ok: false, refusal: { code: 'not-successful' } });
      else if (!within) expect(d).toMatchObject({ ok: false, refusal: { code: 'outside-retention' } });
      else if (w.busy) expect(d).toMatchObject({ ok: false, refusal: { code: 'fleet-busy' } });
      else if (d.ok) expect(d.plan.hosts.length > 0 || d.plan.revert.needed).toBe(true);
      else expect(d.refusal.code).toBe('nothing-left');
      // The merge is reverted only when it is this deployment's and not known to be reverted.
      if (d.ok) expect(d.plan.revert.needed).toBe(w.ownMerge && w.merge.kind !== 'reverted');
    }),
  );
});
