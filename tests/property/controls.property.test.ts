/**
 * The operator controls' rules (src/domain/controls.ts) over arbitrary facts and requests: one
 * function decides for the update's validator and the signal's handler, so a well-formed request is
 * accepted exactly when its control is allowed, and nothing from outside makes the rules throw.
 */
import fc from 'fast-check';
import type { AuditEntry, HostState, HostStatus, Phase, RevertOutcome } from '../../src/domain/deployment';
import { allowedControls, CONTROLS, controlRefusals, controlRejectReason, controlShapeError, controlValidatorReason, controlVerdict, REFUSAL_AUDIT_LIMITS, refusalAudited, refusalEntry, retryCandidates, skippableHosts, type ControlFacts } from '../../src/domain/controls';

const PHASES: Phase[] = ['starting', 'merging', 'building', 'deploying', 'baking', 'succeeded', 'compensating', 'awaiting-operator', 'rolling-back', 'closed'];
const STATES: HostState[] = ['pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed'];
const NAMES = ['h0', 'h1', 'h2', 'h3', 'h4'];

const hostArb = (name: string): fc.Arbitrary<HostStatus> =>
  fc.record({ state: fc.constantFrom(...STATES), error: fc.option(fc.constant('exit 4'), { nil: undefined }) }).map(({ state, error }) => ({ name, kind: 'nixos' as const, state, ...(error ? { error } : {}) }));
const revertArb: fc.Arbitrary<RevertOutcome | undefined> = fc.constantFrom(undefined, { kind: 'commit', commitSha: 'a'.repeat(40), alreadyReverted: false }, { kind: 'failed', error: 'conflict', conflict: true });
const factsArb: fc.Arbitrary<ControlFacts> = fc.record({
  phase: fc.constantFrom(...PHASES),
  paused: fc.boolean(),
  aborting: fc.boolean(),
  busy: fc.boolean(),
  hosts: fc.integer({ min: 0, max: NAMES.length }).chain((n) => fc.tuple(...NAMES.slice(0, n).map(hostArb))),
  mergeSha: fc.option(fc.constant('f'.repeat(40)), { nil: undefined }),
  revert: revertArb,
});

test('a request is accepted exactly when its control is allowed (skip: exactly for the skippable hosts)', () => {
  fc.assert(
    fc.property(factsArb, fc.constantFrom(...CONTROLS), fc.constantFrom(...NAMES), (f, control, host) => {
      const request = { control, requestedBy: 'alice', ...(control === 'skip' ? { host } : {}) };
      const accepted = controlRejectReason(request, f) === undefined;
      if (control === 'skip') expect(accepted).toBe(skippableHosts(f).includes(host));
      else expect(accepted).toBe(allowedControls(f).includes(control));
      expect(allowedControls(f).includes('skip')).toBe(skippableHosts(f).length > 0);
    }),
  );
});

test('nothing is allowed outside the running phases and the manual window; retry only in the manual window, promote only while baking', () => {
  fc.assert(
    fc.property(factsArb, (f) => {
      const allowed = allowedControls(f);
      if (!['building', 'deploying', 'baking', 'awaiting-operator'].includes(f.phase)) expect(allowed).toEqual([]);
      if (allowed.includes('retry-failed')) {
        expect(f.phase).toBe('awaiting-operator');
        expect(retryCandidates(f.hosts).length).toBeGreaterThan(0);
        expect(f.revert?.kind === 'commit').toBe(false);
        // The hosts that switched are still switched: a retry keeps them.
        expect(f.hosts.some((h) => h.state === 'rolled-back' && h.error === undefined)).toBe(false);
      }
      if (allowed.includes('promote')) expect(f.phase).toBe('baking');
      expect(allowed.includes('pause') && allowed.includes('resume')).toBe(false);
    }),
  );
});

test('whatever a request holds, the rules give a reason or accept it, and never throw', () => {
  fc.assert(
    fc.property(factsArb, fc.anything(), fc.record({ control: fc.oneof(fc.constantFrom(...CONTROLS), fc.string()), requestedBy: fc.oneof(fc.string(), fc.anything()), host: fc.anything(), reason: fc.anything() }, { requiredKeys: [] }), (f, junk, partial) => {
      for (const r of [junk, partial]) {
        const reason = controlRejectReason(r, f);
        expect(reason === undefined || (typeof reason === 'string' && reason.length > 0)).toBe(true);
      }
    }),
  );
});

test('the refusals the dashboard shows name exactly the controls not allowed, each with the reason its request gets', () => {
  fc.assert(
    fc.property(factsArb, (f) => {
      const refused = controlRefusals(f);
      const allowed = allowedControls(f);
      expect(Object.keys(refused).sort()).toEqual(CONTROLS.filter((c) => !allowed.includes(c)).sort());
      const pending = f.hosts.find((h) => h.state === 'pending')?.name;
      for (const c of CONTROLS.filter((x) => x !== 'skip')) {
        if (refused[c] !== undefined) expect(refused[c]).toBe(controlRejectReason({ control: c, requestedBy: 'alice' }, f));
      }
      if (refused.skip !== undefined && pending !== undefined) expect(refused.skip).toBe(controlRejectReason({ control: 'skip', requestedBy: 'alice', host: pending }, f));
      for (const why of Object.values(refused)) expect(why).not.toMatch(/^host: required/);
    }),
  );
});

test("the update's verdict: malformed exactly when the shape is wrong, refused with controlRejectReason's reason otherwise; the validator rejects every malformed request and never throws", () => {
  const anyRequest = fc.oneof(fc.anything(), fc.record({ control: fc.oneof(fc.constantFrom(...CONTROLS), fc.string()), requestedBy: fc.oneof(fc.constantFrom('alice', 'bob', ''), fc.anything()), host: fc.oneof(fc.constantFrom(...NAMES), fc.anything()), reason: fc.anything() }, { requiredKeys: [] }));
  fc.assert(
    fc.property(factsArb, anyRequest, (f, r) => {
      const v = controlVerdict(r, f);
      const reason = controlRejectReason(r, f);
      expect(v.kind === 'malformed').toBe(controlShapeError(r) !== undefined);
      if (v.kind === 'accepted') expect(reason).toBeUndefined();
      else expect(v.reason).toBe(reason);
      if (v.kind === 'malformed') expect(controlValidatorReason(r, f, [])).toBe(v.reason);
      else expect(controlValidatorReason(r, f, [])).toBeUndefined();
    }),
  );
});

test('however an operator repeats refused controls, the trail records at most perActor refusals per actor and total in all, and never the same refusal twice in a row', () => {
  const step = fc.record({ actor: fc.constantFrom('alice', 'bob', 'carol', 'dave', 'eve', 'f', 'g', 'h'), control: fc.constantFrom(...CONTROLS), why: fc.constantFrom('a', 'b', 'c') });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 600 }), (steps) => {
      const trail: AuditEntry[] = [];
      for (const s of steps) {
        const request = { control: s.control, requestedBy: s.actor, ...(s.control === 'skip' ? { host: 'h0' } : {}) };
        if (refusalAudited(trail, request, s.why)) trail.push({ at: 't', ...refusalEntry(request, s.why) });
      }
      expect(trail.length).toBeLessThanOrEqual(REFUSAL_AUDIT_LIMITS.total);
      const per = new Map<string, number>();
      for (const a of trail) per.set(a.actor, (per.get(a.actor) ?? 0) + 1);
      for (const n of per.values()) expect(n).toBeLessThanOrEqual(REFUSAL_AUDIT_LIMITS.perActor);
      for (let i = 1; i < trail.length; i++) expect(`${trail[i]?.actor}${trail[i]?.action}${trail[i]?.outcome}`).not.toBe(`${trail[i - 1]?.actor}${trail[i - 1]?.action}${trail[i - 1]?.outcome}`);
    }),
  );
});
