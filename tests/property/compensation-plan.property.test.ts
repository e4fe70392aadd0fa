/**
 * compensationPlan (src/domain/compensation-plan.ts) over arbitrary hosts, policies and reverts: the
 * same steps whatever the order (together or not), each at most once, a revert exactly when
 * revertNeeded says so and the policy allows it, a rollback exactly when there are candidates and
 * the policy allows it; together puts the rollbacks first, the old order the revert first.
 */
import fc from 'fast-check';
import { compensationPlan } from '../../src/domain/compensation-plan';
import type { FailurePolicy, Generation, HostState, HostStatus, RevertOutcome } from '../../src/domain/deployment';
import { deployOrder, revertNeeded, rollbackCandidates, type SagaFacts } from '../../src/domain/saga';

const B: Generation = { number: 42, storePath: '/nix/store/b' };
const A: Generation = { number: 43, storePath: '/nix/store/a' };
const states: HostState[] = ['pending', 'held', 'switching', 'switched', 'failed', 'not-attempted', 'rolling-back', 'rolled-back', 'rollback-failed'];

const hostArb = (name: string): fc.Arbitrary<HostStatus> =>
  fc.record({ state: fc.constantFrom(...states), recorded: fc.boolean(), moved: fc.option(fc.boolean(), { nil: undefined }), uncertain: fc.option(fc.constant('lost'), { nil: undefined }) }).map(({ state, recorded, moved, uncertain }) => ({
    name,
    kind: 'nixos' as const,
    state,
    ...(recorded ? { before: B } : {}),
    ...(moved !== undefined ? { profileMoved: moved, ...(moved ? { after: A } : {}) } : {}),
    ...(uncertain !== undefined ? { uncertain } : {}),
  }));
const revertArb: fc.Arbitrary<RevertOutcome | undefined> = fc.constantFrom<RevertOutcome | undefined>(undefined, { kind: 'commit', commitSha: 'a'.repeat(40), alreadyReverted: false }, { kind: 'failed', error: 'boom', conflict: false });
const policyArb: fc.Arbitrary<FailurePolicy> = fc.record({ revert: fc.constantFrom('off' as const, 'commit' as const, 'pull-request' as const), rollbackHosts: fc.boolean() });
const factsArb = fc
  .record({
    n: fc.integer({ min: 0, max: 6 }),
    seed: fc.array(hostArb('x'), { minLength: 6, maxLength: 6 }),
    mergeSha: fc.option(fc.constant('f'.repeat(40)), { nil: undefined }),
    revert: revertArb,
    ownMerge: fc.boolean(),
    scope: fc.constantFrom('deployment' as const, 'failed-hosts' as const),
  })
  .map(({ n, seed, ...rest }) => {
    const hosts = seed.slice(0, n).map((h, i) => ({ ...h, name: `h${i}` }));
    const f: SagaFacts = { phase: 'compensating', hosts, order: deployOrder({ waves: [{ name: 'w', hosts: hosts.map((h) => h.name), maxParallel: 1, bakeSeconds: 0 }] }), busy: false, ...rest };
    return f;
  });

test('the steps are the same in either order, each at most once, and follow the saga rules and the policy', () => {
  fc.assert(
    fc.property(factsArb, policyArb, (f, policy) => {
      const together = compensationPlan(f, policy, { together: true });
      const before = compensationPlan(f, policy, { together: false });
      expect(together.together).toBe(true);
      expect(before.together).toBe(false);
      expect([...together.steps].sort()).toEqual([...before.steps].sort());
      expect(new Set(together.steps).size).toBe(together.steps.length);
      expect(together.steps.includes('revert')).toBe(policy.revert !== 'off' && revertNeeded(f));
      expect(together.steps.includes('rollback')).toBe(policy.rollbackHosts && rollbackCandidates(f).length > 0);
      if (together.steps.length === 2) {
        expect(together.steps).toEqual(['rollback', 'revert']);
        expect(before.steps).toEqual(['revert', 'rollback']);
      }
    }),
    { numRuns: 500 },
  );
});
