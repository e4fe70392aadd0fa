/**
 * Which operator control applies when, case by case (src/domain/controls.ts). The invariants over
 * arbitrary facts and requests are in tests/property/controls.property.test.ts.
 */
import type { AuditEntry, Generation, HostStatus, RevertOutcome } from '../../src/domain/deployment';
import { allowedControls, controlAuditAction, controlRejectReason, controlShapeError, controlValidatorReason, controlVerdict, REFUSAL_AUDIT_LIMITS, refusalAudited, refusalEntry, retryCandidates, retrySucceeded, skippableHosts, type ControlFacts, type ControlRequest } from '../../src/domain/controls';

const B: Generation = { number: 42, storePath: '/nix/store/b' };
const A: Generation = { number: 43, storePath: '/nix/store/a' };
const host = (name: string, state: HostStatus['state'], extra: Partial<HostStatus> = {}): HostStatus => ({ name, kind: 'nixos', state, ...extra });
const facts = (over: Partial<ControlFacts> = {}): ControlFacts => ({
  phase: 'deploying',
  paused: false,
  aborting: false,
  busy: false,
  hosts: [host('a', 'switched', { before: B, after: A }), host('b', 'switching', { before: B }), host('c', 'pending')],
  mergeSha: 'f'.repeat(40),
  ...over,
});
const req = (control: string, extra: Record<string, unknown> = {}) => ({ control, requestedBy: 'alice', ...extra });
const reverted: RevertOutcome = { kind: 'commit', commitSha: 'a'.repeat(40), alreadyReverted: false };

describe('while deploying', () => {
  test('when nothing was asked yet, then pause, abort and skip apply; resume and promote do not', () => {
    expect(allowedControls(facts())).toEqual(['pause', 'abort', 'skip']);
    expect(controlRejectReason(req('resume'), facts())).toBe('the deployment is not paused');
    expect(controlRejectReason(req('promote'), facts())).toMatch(/promote applies only while a wave bakes/);
  });
  test('when paused, then resume applies and a second pause is refused', () => {
    const f = facts({ paused: true });
    expect(allowedControls(f)).toEqual(['resume', 'abort', 'skip']);
    expect(controlRejectReason(req('pause'), f)).toBe('the deployment is already paused');
  });
  test('when an abort was accepted, then nothing else applies', () => {
    const f = facts({ aborting: true, paused: false });
    expect(allowedControls(f)).toEqual([]);
    expect(controlRejectReason(req('abort'), f)).toBe('the deployment is already being aborted');
    expect(controlRejectReason(req('skip', { host: 'c' }), f)).toBe('the deployment is being aborted');
  });
  test('when a host is skipped, then only a pending host of this deployment is accepted', () => {
    expect(controlRejectReason(req('skip', { host: 'c' }), facts())).toBeUndefined();
    expect(controlRejectReason(req('skip', { host: 'b' }), facts())).toBe('host b is switching; only a host not started yet can be skipped');
    expect(controlRejectReason(req('skip', { host: 'zz' }), facts())).toBe('host: zz is not in this deployment');
    expect(controlRejectReason(req('skip'), facts())).toBe('host: required (the host to skip)');
    expect(skippableHosts(facts())).toEqual(['c']);
  });
});

test('when baking, then promote applies', () => {
  expect(allowedControls(facts({ phase: 'baking' }))).toEqual(['pause', 'abort', 'skip', 'promote']);
});

test('when the deployment awaits an operator, then abort is refused with a pointer to the rollback', () => {
  expect(controlRejectReason(req('abort'), facts({ phase: 'awaiting-operator' }))).toMatch(/use rollback/);
  expect(controlRejectReason(req('pause'), facts({ phase: 'closed' }))).toBe('the deployment is closed; pause applies only while it builds, deploys or bakes');
});

describe('retry-failed', () => {
  const failed = [host('a', 'switched', { before: B, after: A }), host('b', 'failed', { before: B, error: 'exit 4', profileMoved: true }), host('c', 'not-attempted')];
  const waiting = (over: Partial<ControlFacts> = {}) => facts({ phase: 'awaiting-operator', hosts: failed, ...over });
  test('when hosts failed and the merge is in place, then it applies to the failed hosts only', () => {
    expect(allowedControls(waiting())).toEqual(['retry-failed']);
    expect(retryCandidates(failed).map((h) => h.name)).toEqual(['b']);
  });
  test('when a failed host was rolled back, then it is retried; a switched host rolled back makes the retry refused', () => {
    expect(retryCandidates([host('b', 'rolled-back', { before: B, error: 'exit 4' })]).map((h) => h.name)).toEqual(['b']);
    const undone = waiting({ hosts: [host('a', 'rolled-back', { before: B }), host('b', 'rolled-back', { before: B, error: 'exit 4' })] });
    expect(controlRejectReason(req('retry-failed'), undone)).toBe('hosts that switched were rolled back (a): there is nothing to keep; start a new deployment');
  });
  test('when the merge was reverted, then it is refused; a failed revert leaves it open', () => {
    expect(controlRejectReason(req('retry-failed'), waiting({ revert: reverted }))).toMatch(/reverted change/);
    expect(controlRejectReason(req('retry-failed'), waiting({ revert: { kind: 'failed', error: 'conflict', conflict: true } }))).toBeUndefined();
  });
  test('when nothing failed, a rollback runs, or nothing was merged, then it is refused with the reason', () => {
    expect(controlRejectReason(req('retry-failed'), waiting({ hosts: [host('a', 'switched', { before: B, after: A })] }))).toBe('no host failed: nothing to retry');
    expect(controlRejectReason(req('retry-failed'), waiting({ busy: true }))).toBe('a manual rollback or retry is already in progress');
    expect(controlRejectReason(req('retry-failed'), waiting({ mergeSha: undefined }))).toMatch(/nothing was merged/);
    expect(controlRejectReason(req('retry-failed'), facts())).toMatch(/applies only to a deployment awaiting an operator/);
  });
  test('when every host switched or is held after a retry, then it succeeded', () => {
    expect(retrySucceeded([host('a', 'switched'), host('h', 'held')])).toBe(true);
    expect(retrySucceeded([host('a', 'switched'), host('c', 'not-attempted')])).toBe(false);
  });
});

test('when a request is malformed, then the reason names the field, and its audit action is invalid-request', () => {
  expect(controlShapeError(null)).toBe('request must be an object');
  expect(controlShapeError([])).toBe('request must be an object');
  expect(controlShapeError({ control: 'pause' })).toBe('requestedBy: required (who asked)');
  expect(controlShapeError(req('pause', { requestedBy: 'x'.repeat(201) }))).toBe('requestedBy: at most 200 characters (got 201)');
  expect(controlShapeError(req('explode'))).toBe('control: must be one of pause, resume, abort, skip, retry-failed, promote (got "explode")');
  expect(controlShapeError(req('pause', { host: 'a' }))).toBe('host: only skip names a host (got it with pause)');
  expect(controlShapeError(req('skip', { host: 'h'.repeat(101) }))).toBe('host: at most 100 characters');
  expect(controlShapeError(req('pause', { reason: 5 }))).toBe('reason: a text of at most 500 characters');
  expect(controlAuditAction(req('explode'))).toBe('invalid-request');
  expect(controlAuditAction(null)).toBe('invalid-request');
  expect(controlAuditAction(req('skip'))).toBe('skip');
});

describe('refused updates in the audit trail (patched h-ops-audit-refusals)', () => {
  const refusal = (actor: string, action: AuditEntry['action'], outcome: string): AuditEntry => ({ at: '2026-12-02T13:00:00.000Z', actor, action, hosts: [], outcome });
  test('when a request is malformed, then it is malformed (the validator rejects it); when it merely does not apply, then it is refused with the same reason controlRejectReason gives', () => {
    expect(controlVerdict(req('explode'), facts())).toEqual({ kind: 'malformed', reason: expect.stringMatching(/^control: must be one of/) });
    expect(controlVerdict({ control: 'pause' }, facts())).toEqual({ kind: 'malformed', reason: 'requestedBy: required (who asked)' });
    expect(controlVerdict('nope', facts()).kind).toBe('malformed');
    expect(controlVerdict(req('skip'), facts()).kind).toBe('malformed');
    expect(controlVerdict(req('resume'), facts())).toEqual({ kind: 'refused', reason: 'the deployment is not paused', request: req('resume') });
    expect(controlVerdict(req('skip', { host: 'b' }), facts())).toMatchObject({ kind: 'refused', reason: controlRejectReason(req('skip', { host: 'b' }), facts()) });
    expect(controlVerdict(req('pause'), facts()).kind).toBe('accepted');
    expect(controlValidatorReason(req('explode'), facts(), [])).toMatch(/^control: must be one of/);
    expect(controlValidatorReason(req('resume'), facts(), [])).toBeUndefined();
    expect(controlValidatorReason(req('pause'), facts(), [])).toBeUndefined();
  });
  test('when a refusal is recorded, then its entry names the actor, the action, the host and "refused: <reason>"', () => {
    expect(refusalEntry(req('skip', { host: 'b' }) as ControlRequest, 'host b is switching; only a host not started yet can be skipped')).toEqual({ actor: 'alice', action: 'skip', hosts: ['b'], outcome: 'refused: host b is switching; only a host not started yet can be skipped' });
  });
  test('when the same refusal repeats back to back, then only the first is recorded; another actor, action or reason is recorded', () => {
    const r = req('resume') as ControlRequest;
    const first = refusal('alice', 'resume', 'refused: the deployment is not paused');
    expect(refusalAudited([], r, 'the deployment is not paused')).toBe(true);
    expect(refusalAudited([first], r, 'the deployment is not paused')).toBe(false);
    expect(controlValidatorReason(r, facts(), [first])).toBe('the deployment is not paused');
    expect(refusalAudited([first], { ...r, requestedBy: 'bob' }, 'the deployment is not paused')).toBe(true);
    expect(refusalAudited([first], { ...r, control: 'promote' }, 'x')).toBe(true);
    // Not consecutive: something happened between (an accepted control).
    expect(refusalAudited([first, refusal('bob', 'pause', 'paused: no further host starts; the hosts in flight finish')], r, 'the deployment is not paused')).toBe(true);
  });
  test('when an actor has perActor refusals recorded, or the trail has total, then no further refusal is recorded (the validator rejects it)', () => {
    const { perActor, total } = REFUSAL_AUDIT_LIMITS;
    const mine = Array.from({ length: perActor }, (_, i) => refusal('alice', i % 2 === 0 ? 'resume' : 'promote', `refused: ${i}`));
    expect(refusalAudited(mine.slice(1), req('abort') as ControlRequest, 'y')).toBe(true);
    expect(refusalAudited(mine, req('abort') as ControlRequest, 'y')).toBe(false);
    expect(refusalAudited(mine, { ...(req('abort') as ControlRequest), requestedBy: 'bob' }, 'y')).toBe(true);
    const many = Array.from({ length: total }, (_, i) => refusal(`op${i}`, 'resume', 'refused: the deployment is not paused'));
    expect(refusalAudited(many, { ...(req('abort') as ControlRequest), requestedBy: 'new' }, 'y')).toBe(false);
    // Refused signals ("rejected: …") count as well (patched 'refusals-bounded': one limit for every refusal); accepted entries do not.
    const signals = Array.from({ length: total }, (_, i) => refusal(`sig${i}`, 'resume', 'rejected: the deployment is not paused'));
    expect(refusalAudited(signals, { ...(req('abort') as ControlRequest), requestedBy: 'new' }, 'y')).toBe(false);
    const accepted = Array.from({ length: total }, () => refusal('alice', 'resume', 'resumed'));
    expect(refusalAudited(accepted, req('abort') as ControlRequest, 'y')).toBe(true);
  });
});
