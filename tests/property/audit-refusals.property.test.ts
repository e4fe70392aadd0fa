/**
 * The bound on recorded refusals (refusalRecorded, src/domain/audit.ts), over arbitrary floods of
 * refusals of every kind (updates' `refused: `, signals' `rejected: ` and `confirmation rejected: `)
 * from arbitrary actors (any value a signal may carry), interleaved with entries that are not refusals.
 */
import fc from 'fast-check';
import { isRefusal, REFUSAL_AUDIT_LIMITS, refusalRecorded, storableAuditEntry } from '../../src/domain/audit';
import type { AuditEntry } from '../../src/domain/deployment';

const actor = fc.oneof(fc.constantFrom('alice', 'bob', 'eve', '', ' eve ', 'x'.repeat(300)), fc.string({ maxLength: 8 }), fc.constant(undefined), fc.integer());
const refusal = fc.record({
  actor,
  action: fc.oneof(fc.constantFrom('pause', 'skip', 'start-now', 'undo', 'revert'), fc.string({ maxLength: 6 })),
  hosts: fc.array(fc.constantFrom('h1', 'h2'), { maxLength: 2 }),
  outcome: fc.tuple(fc.constantFrom('refused: ', 'rejected: ', 'confirmation rejected: '), fc.constantFrom('a', 'b', 'not paused')).map(([k, w]) => k + w),
});
const other = fc.record({ actor: fc.constantFrom('alice', 'nixfleet (automatic)'), action: fc.constant('pause'), hosts: fc.constant([] as string[]), outcome: fc.constantFrom('paused', 'resumed') });
const step = fc.oneof({ weight: 5, arbitrary: refusal.map((r) => ({ refusal: true as const, r })) }, { weight: 1, arbitrary: other.map((r) => ({ refusal: false as const, r })) });

test('however refusals flood in, the trail holds at most perActor per actor and total in all, never the same refusal twice in a row, and records one exactly when it is new and under both limits', () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 400 }), (steps) => {
      const trail: AuditEntry[] = [];
      for (const s of steps) {
        const e = storableAuditEntry({ at: 't', ...s.r });
        if (!s.refusal) {
          trail.push(e);
          continue;
        }
        const refusals = trail.filter(isRefusal);
        const last = trail.at(-1);
        const repeat = last !== undefined && isRefusal(last) && last.actor === e.actor && last.action === e.action && last.outcome === e.outcome && last.hosts.join('\n') === e.hosts.join('\n');
        const under = refusals.filter((a) => a.actor === e.actor).length < REFUSAL_AUDIT_LIMITS.perActor && refusals.length < REFUSAL_AUDIT_LIMITS.total;
        const recorded = refusalRecorded(trail, s.r);
        expect(recorded).toBe(!repeat && under);
        if (recorded) trail.push(e);
      }
      const refusals = trail.filter(isRefusal);
      expect(refusals.length).toBeLessThanOrEqual(REFUSAL_AUDIT_LIMITS.total);
      const per = new Map<string, number>();
      for (const a of refusals) per.set(a.actor, (per.get(a.actor) ?? 0) + 1);
      for (const n of per.values()) expect(n).toBeLessThanOrEqual(REFUSAL_AUDIT_LIMITS.perActor);
    }),
  );
});

test('an actor that changes its name on every signal meets the total limit', () => {
  const trail: AuditEntry[] = [];
  let recorded = 0;
  for (let i = 0; i < 500; i++) {
    const r = { actor: `mallory-${i}`, action: 'rm -rf /', hosts: [], outcome: 'rejected: control: must be one of pause, resume' };
    if (refusalRecorded(trail, r)) {
      trail.push(storableAuditEntry({ at: 't', ...r }));
      recorded += 1;
    }
  }
  expect(recorded).toBe(REFUSAL_AUDIT_LIMITS.total);
});

test('entries that are not refusals count towards neither limit', () => {
  const trail: AuditEntry[] = Array.from({ length: 200 }, (_, i) => storableAuditEntry({ at: 't', actor: 'alice', action: 'pause', hosts: [], outcome: `paused ${i}` }));
  expect(refusalRecorded(trail, { actor: 'alice', action: 'resume', hosts: [], outcome: 'refused: the deployment is not paused' })).toBe(true);
});
