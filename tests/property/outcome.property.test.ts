/**
 * `failedOutcome` (src/domain/outcome.ts): what a failed deployment reports. Unit cases for each
 * outcome (issue 12, bug 3: a revert conflict was reported as failed-rolled-back), and fast-check over
 * arbitrary host states and revert results for the invariants: "rolled back" only when nothing is
 * left to undo, and a failed revert is always said.
 */
import fc from 'fast-check';
import type { HostState, RevertOutcome } from '../../src/domain/deployment';
import { failedOutcome } from '../../src/domain/outcome';

const hosts = (...states: HostState[]) => states.map((state) => ({ state }));
const conflict: RevertOutcome = { kind: 'failed', error: 'flake.lock was edited since the merge', conflict: true };
const reverted: RevertOutcome = { kind: 'commit', commitSha: 'a'.repeat(40), alreadyReverted: false };

test('each outcome from the facts that make it', () => {
  expect(failedOutcome({ hosts: hosts('rolled-back', 'rolled-back', 'not-attempted'), rollbackCandidates: 0, revert: reverted })).toBe('failed-rolled-back');
  expect(failedOutcome({ hosts: hosts('rolled-back', 'rolled-back', 'not-attempted'), rollbackCandidates: 0 })).toBe('failed-rolled-back');
  expect(failedOutcome({ hosts: hosts('rolled-back', 'rollback-failed'), rollbackCandidates: 1, revert: reverted })).toBe('failed-rollback-incomplete');
  expect(failedOutcome({ hosts: hosts('switched', 'failed'), rollbackCandidates: 2 })).toBe('failed-not-rolled-back');
  // The case: every host back, the revert conflicted: the merge is still on the branch.
  expect(failedOutcome({ hosts: hosts('rolled-back', 'rolled-back', 'not-attempted'), rollbackCandidates: 0, revert: conflict })).toBe('failed-revert-failed');
  expect(failedOutcome({ hosts: hosts('switched', 'failed'), rollbackCandidates: 2, revert: conflict })).toBe('failed-revert-failed');
});

const state = fc.constantFrom<HostState>('pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed');
const revert = fc.option(
  fc.oneof(
    fc.constant(reverted),
    fc.constant<RevertOutcome>({ kind: 'pull-request', url: 'https://github.example/acme/fleet/pull/9', number: 9, fellBackFromProtectedBranch: false }),
    fc.record({ kind: fc.constant('failed' as const), error: fc.string(), conflict: fc.boolean() }),
  ),
  { nil: undefined },
);

test('property: "rolled back" only when no host is left to roll back and no revert failed; a failed revert is always said', () => {
  fc.assert(
    fc.property(fc.array(state, { maxLength: 12 }), fc.nat(12), revert, (states, candidates, r) => {
      const outcome = failedOutcome({ hosts: hosts(...states), rollbackCandidates: candidates, revert: r });
      if (outcome === 'failed-rolled-back') {
        expect(candidates).toBe(0);
        expect(states).not.toContain('rollback-failed');
        expect(r?.kind).not.toBe('failed');
      }
      if (r?.kind === 'failed') expect(outcome).toBe('failed-revert-failed');
      if (outcome === 'failed-not-rolled-back') expect(states.some((s) => s === 'rolled-back' || s === 'rollback-failed')).toBe(false);
    }),
    { numRuns: 2000 },
  );
});
