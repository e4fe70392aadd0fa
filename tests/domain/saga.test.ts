/**
 * The saga's rules, case by case (src/domain/saga.ts, rollout.ts, flake-ref.ts). Their invariants
 * over arbitrary host events are in tests/property/saga.property.test.ts.
 */
import type { Generation, HostStatus, RevertOutcome } from '../../src/domain/deployment';
import { fillFlakeRef } from '../../src/domain/flake-ref';
import { defaultRollout } from '../../src/domain/rollout';
import {
  allowedActions,
  deployOrder,
  failedHostOf,
  failureText,
  outcomeOf,
  preview,
  rejectReason,
  revertLabel,
  revertNeeded,
  revertSummary,
  rollbackCandidates,
  rollbackSummary,
  type SagaFacts,
} from '../../src/domain/saga';
import { rolloutOf } from '../../src/schemas/fleet.schema';

const B: Generation = { number: 42, storePath: '/nix/store/b' };
const A: Generation = { number: 43, storePath: '/nix/store/a' };
const host = (name: string, state: HostStatus['state'], extra: Partial<HostStatus> = {}): HostStatus => ({ name, kind: 'nixos', state, ...extra });
const order = deployOrder({ waves: [{ name: 'canary', hosts: ['c1'], maxParallel: 1, bakeSeconds: 0 }, { name: 'rest', hosts: ['r1', 'r2', 'r3'], maxParallel: 2, bakeSeconds: 0 }] });
const facts = (hosts: HostStatus[], over: Partial<SagaFacts> = {}): SagaFacts => ({ phase: 'awaiting-operator', hosts, order, mergeSha: 'f'.repeat(40), ownMerge: true, scope: 'deployment', busy: false, ...over });
const reverted: RevertOutcome = { kind: 'commit', commitSha: 'abcdef0123456789'.padEnd(40, '0'), alreadyReverted: false };

test('rollback candidates: switched hosts and failed hosts that moved or may have, last deployed first; never a host with nothing recorded', () => {
  const hosts = [
    host('c1', 'switched', { before: B, after: A }),
    host('r1', 'failed', { before: B, profileMoved: false }),
    host('r2', 'failed', { before: B, uncertain: 'ConnectionLost' }),
    host('r3', 'failed', { uncertain: 'the generation could not be recorded' }),
  ];
  expect(rollbackCandidates(facts(hosts)).map((h) => h.name)).toEqual(['r2', 'c1']);
  // Within the budget only the failed hosts are undone: the canary that switched stays.
  expect(rollbackCandidates(facts(hosts, { scope: 'failed-hosts' })).map((h) => h.name)).toEqual(['r2']);
});

test('bug 2: a commit deploy is not reverted by the compensation; with nothing merged and no host changed, nothing is undone', () => {
  const untouched = [host('c1', 'failed', { before: B, profileMoved: false }), host('r1', 'not-attempted')];
  const f = facts(untouched, { ownMerge: false, phase: 'compensating' });
  expect(revertNeeded(f)).toBe(false);
  expect(rollbackCandidates(f)).toEqual([]);
  // A pull request this deployment merged is.
  expect(revertNeeded({ ...f, ownMerge: true })).toBe(true);
  // In the manual window the operator may still ask for the commit's revert explicitly.
  expect(allowedActions({ ...f, phase: 'awaiting-operator' })).toEqual(['revert', 'revert-and-rollback', 'dismiss']);
});

test('allowed actions and the preview follow what is left to undo', () => {
  const hosts = [host('c1', 'switched', { before: B, after: A }), host('r1', 'failed', { before: B, profileMoved: true, after: A })];
  expect(allowedActions(facts(hosts))).toEqual(['revert', 'revert-and-rollback', 'dismiss']);
  expect(allowedActions(facts(hosts, { revert: reverted }))).toEqual(['revert-and-rollback', 'dismiss']);
  expect(allowedActions(facts([], { revert: reverted }))).toEqual(['dismiss']);
  expect(allowedActions(facts(hosts, { phase: 'deploying' }))).toEqual([]);
  // A failed revert can be tried again.
  expect(allowedActions(facts([], { revert: { kind: 'failed', error: 'conflict', conflict: true } }))).toEqual(['revert', 'revert-and-rollback', 'dismiss']);
  expect(preview(facts(hosts))).toEqual({
    hosts: [
      { name: 'r1', from: A, to: B, state: 'failed' },
      { name: 'c1', from: A, to: B, state: 'switched' },
    ],
    revert: { needed: true, mergeSha: 'f'.repeat(40), alreadyDone: undefined },
    allowed: ['revert', 'revert-and-rollback', 'dismiss'],
  });
});

test('rejectReason names the field, then says why an action does not apply', () => {
  const f = facts([host('c1', 'switched', { before: B, after: A })], { revert: reverted });
  expect(rejectReason(null, f)).toBe('request must be an object');
  expect(rejectReason({ action: 'revert' }, f)).toBe('requestedBy: required (who asked)');
  expect(rejectReason({ action: 'revert', requestedBy: 'x'.repeat(201) }, f)).toBe('requestedBy: at most 200 characters (got 201)');
  expect(rejectReason({ action: 'rm -rf /', requestedBy: 'mallory' }, f)).toBe('action: must be revert, revert-and-rollback or dismiss (got "rm -rf /")');
  expect(rejectReason({ action: 'revert', requestedBy: 'a', revertMode: 'force' }, f)).toBe('revertMode: must be commit or pull-request');
  expect(rejectReason({ action: 'revert', requestedBy: 'a', reason: 5 }, f)).toBe('reason: a text of at most 500 characters');
  expect(rejectReason({ action: 'revert', requestedBy: 'a' }, f)).toBe('action revert no longer applies (allowed now: revert-and-rollback, dismiss)');
  expect(rejectReason({ action: 'revert-and-rollback', requestedBy: 'a' }, f)).toBeUndefined();
  expect(rejectReason({ action: 'dismiss', requestedBy: 'a' }, { ...f, busy: true })).toBe('a manual rollback is already in progress');
  expect(rejectReason({ action: 'dismiss', requestedBy: 'a' }, { ...f, phase: 'deploying' })).toBe('the deployment is deploying; manual rollback applies only to a failed deployment awaiting an operator');
});

test('bug 4: the summary says who reverted when it was not the entry\'s own action', () => {
  expect(revertSummary(reverted)).toBe('reverted in abcdef012345');
  expect(revertSummary(reverted, 'dave')).toBe('already reverted by dave in abcdef012345');
  const pr: RevertOutcome = { kind: 'pull-request', url: 'https://github.example/acme/fleet/pull/7', number: 7, fellBackFromProtectedBranch: false };
  expect(revertSummary(pr, 'dave')).toBe('already reverted by dave: revert pull request #7');
  expect(revertSummary(pr)).toBe('revert pull request #7');
  expect(revertSummary({ ...reverted, alreadyReverted: true })).toBe('already reverted (abcdef012345)');
  expect(revertSummary({ kind: 'failed', error: 'conflict', conflict: true })).toBe('revert failed: conflict');
  expect(revertSummary(undefined)).toBe('no revert');
  expect(revertLabel(reverted)).toBe(reverted.kind === 'commit' ? reverted.commitSha : '');
  expect(revertLabel(pr)).toBe(pr.url);
  expect(revertLabel({ kind: 'failed', error: 'x', conflict: false })).toBeUndefined();
  expect(rollbackSummary({ rolledBack: [], failed: [] })).toBe('rolled back: none');
  expect(rollbackSummary({ rolledBack: ['a', 'b'], failed: ['c'] })).toBe('rolled back: a, b; rollback failed: c');
});

test('failures are typed: the text follows the kind, never the other way round', () => {
  expect(failureText({ kind: 'build', hosts: [{ host: 'b2', error: 'eval error' }, { host: 'b3', error: 'x' }] })).toBe('the build failed on b2, b3; no host was switched: eval error');
  expect(failedHostOf({ kind: 'build', hosts: [{ host: 'b2', error: 'e' }] })).toBe('b2');
  expect(failureText({ kind: 'halted', failed: ['n3'], failures: 1, budget: 0, error: 'exit 4' })).toBe('switch failed on n3: exit 4');
  expect(failureText({ kind: 'halted', failed: ['s2', 's3'], failures: 3, budget: 1 })).toBe('switch failed on s2: 3 hosts failed, over the failure budget of 1: s2, s3');
  expect(failureText({ kind: 'cancelled' })).toBe('deployment cancelled');
  expect(failureText({ kind: 'cancelled', host: 'h1' })).toBe('switch failed on h1: deployment cancelled');
  expect(failureText({ kind: 'wave-failed', wave: 'servers', error: 'Workflow execution terminated', host: 's1' })).toBe('wave servers failed before it finished (Workflow execution terminated); its hosts were re-read');
});

test('one default rollout: the fleet file without a rollout gets exactly the workflow\'s default', () => {
  const fleet = { hosts: [{ name: 'a' }, { name: 'b' }] } as Parameters<typeof rolloutOf>[0];
  expect(rolloutOf(fleet)).toEqual(defaultRollout(['a', 'b']));
  expect(defaultRollout(['a', 'b']).waves).toEqual([{ name: 'all', hosts: ['a', 'b'], maxParallel: 1, bakeSeconds: 0 }]);
});

test('one template filling: every placeholder, every occurrence; {sha} stays until it is known', () => {
  expect(fillFlakeRef('git+https://h/{owner}/{repo}.git?ref=main&rev={sha}', { owner: 'acme', repo: 'fleet', sha: 'a'.repeat(40) })).toBe(`git+https://h/acme/fleet.git?ref=main&rev=${'a'.repeat(40)}`);
  expect(fillFlakeRef('github:{owner}/{repo}/{sha}?dir={repo}', { owner: 'o', repo: 'r' })).toBe('github:o/r/{sha}?dir=r');
  expect(fillFlakeRef('git+file:///{repo}?ref={branch}&rev={sha}', { owner: 'o', repo: 'r', sha: '0', branch: 'main' })).toBe('git+file:///r?ref=main&rev=0');
});

test('the outcome: within the budget it is a success with failures; otherwise what is left to undo decides', () => {
  const off = [host('c1', 'switched', { before: B, after: A }), host('r1', 'rollback-failed', { before: B, after: A })];
  expect(outcomeOf(facts(off, { scope: 'failed-hosts' }))).toBe('succeeded-with-failures');
  expect(outcomeOf(facts(off))).toBe('failed-rollback-incomplete');
  expect(outcomeOf(facts([host('c1', 'rolled-back', { before: B })], { revert: reverted }))).toBe('failed-rolled-back');
  expect(outcomeOf(facts([host('c1', 'rolled-back', { before: B })], { revert: { kind: 'failed', error: 'conflict', conflict: true } }))).toBe('failed-revert-failed');
});
