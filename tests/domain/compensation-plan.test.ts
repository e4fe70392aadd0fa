/**
 * What the automatic compensation runs after a halt, and whether its steps wait for each other
 * (src/domain/compensation-plan.ts). Invariants over arbitrary facts: tests/property/compensation-plan.property.test.ts.
 */
import { compensationPlan } from '../../src/domain/compensation-plan';
import type { Generation, HostStatus } from '../../src/domain/deployment';
import { deployOrder, type SagaFacts } from '../../src/domain/saga';

const B: Generation = { number: 42, storePath: '/nix/store/b' };
const A: Generation = { number: 43, storePath: '/nix/store/a' };
const host = (name: string, state: HostStatus['state'], extra: Partial<HostStatus> = {}): HostStatus => ({ name, kind: 'nixos', state, ...extra });
const order = deployOrder({ waves: [{ name: 'all', hosts: ['h1', 'h2', 'h3'], maxParallel: 1, bakeSeconds: 0 }] });
const facts = (hosts: HostStatus[], over: Partial<SagaFacts> = {}): SagaFacts => ({ phase: 'compensating', hosts, order, mergeSha: 'f'.repeat(40), ownMerge: true, scope: 'deployment', busy: false, ...over });
const changed = [host('h1', 'switched', { before: B, after: A }), host('h2', 'failed', { before: B, profileMoved: true, after: A }), host('h3', 'not-attempted')];

test('when a merged pull request halts on a host that moved, then the host rollbacks and the revert start together, the rollbacks first', () => {
  expect(compensationPlan(facts(changed), { revert: 'commit', rollbackHosts: true }, { together: true })).toEqual({ steps: ['rollback', 'revert'], together: true });
  expect(compensationPlan(facts(changed), { revert: 'pull-request', rollbackHosts: true }, { together: true })).toEqual({ steps: ['rollback', 'revert'], together: true });
});

test('when the deployment started before the change (not together), then the revert runs first and the rollbacks wait for it', () => {
  expect(compensationPlan(facts(changed), { revert: 'commit', rollbackHosts: true }, { together: false })).toEqual({ steps: ['revert', 'rollback'], together: false });
});

test('when the policy leaves a step out, then it is not run', () => {
  expect(compensationPlan(facts(changed), { revert: 'off', rollbackHosts: true }, { together: true }).steps).toEqual(['rollback']);
  expect(compensationPlan(facts(changed), { revert: 'commit', rollbackHosts: false }, { together: true }).steps).toEqual(['revert']);
  expect(compensationPlan(facts(changed), { revert: 'off', rollbackHosts: false }, { together: true }).steps).toEqual([]);
});

test('when nothing is left to undo, then no step runs: no host moved, a commit deploy, or the merge already reverted', () => {
  const untouched = [host('h1', 'failed', { before: B, profileMoved: false }), host('h2', 'not-attempted')];
  const all = { revert: 'commit', rollbackHosts: true } as const;
  // The merge is still this deployment's to revert.
  expect(compensationPlan(facts(untouched), all, { together: true }).steps).toEqual(['revert']);
  expect(compensationPlan(facts(untouched, { ownMerge: false }), all, { together: true }).steps).toEqual([]);
  expect(compensationPlan(facts(changed, { ownMerge: false }), all, { together: true }).steps).toEqual(['rollback']);
  expect(compensationPlan(facts(changed, { revert: { kind: 'commit', commitSha: 'a'.repeat(40), alreadyReverted: false } }), all, { together: true }).steps).toEqual(['rollback']);
  // A failed revert attempt is tried again.
  expect(compensationPlan(facts(changed, { revert: { kind: 'failed', error: 'x', conflict: false } }), all, { together: true }).steps).toEqual(['rollback', 'revert']);
});
