import fc from 'fast-check';
import type { Generation } from '../../src/domain/deployment';
import type { HostNow, UndoHost } from '../../src/domain/undo';
import { recheckConfirmedPlan } from '../../src/domain/undo-recheck';

const g = (n: number, h: string): Generation => ({ number: n, storePath: `/nix/store/${h}-${n}` });
const host = (name: string, from: Generation, to: Generation, forced = false): UndoHost => ({ name, from, to, forced });
const plan = { hosts: [host('hsb0', g(43, 'hsb0'), g(42, 'hsb0')), host('gpc0', g(44, 'gpc0'), g(42, 'gpc0'), true)] };

describe('recheckConfirmedPlan', () => {
  test('when every host to roll back is where it was when confirmed, then the undo goes ahead', () => {
    expect(recheckConfirmedPlan(plan, { hsb0: { inFleet: true, generation: g(43, 'hsb0') }, gpc0: { inFleet: true, generation: g(44, 'gpc0') } })).toEqual({ ok: true });
  });

  test('when a host runs the same store path under another number (renumbered), then it has not changed', () => {
    expect(recheckConfirmedPlan(plan, { hsb0: { inFleet: true, generation: { number: 50, storePath: g(43, 'hsb0').storePath } }, gpc0: { inFleet: true, generation: g(44, 'gpc0') } })).toEqual({ ok: true });
  });

  test('when a host moved meanwhile (a deployment ran during the confirmation), then nothing is undone and the reason says what changed', () => {
    const r = recheckConfirmedPlan(plan, { hsb0: { inFleet: true, generation: g(45, 'hsb0') }, gpc0: { inFleet: true, generation: g(44, 'gpc0') } });
    expect(r).toEqual({ ok: false, changes: [{ name: 'hsb0', confirmed: g(43, 'hsb0'), now: g(45, 'hsb0') }], reason: expect.stringMatching(/^changed since the confirmation, nothing undone: hsb0 runs generation 45 \(\/nix\/store\/hsb0-45\), not generation 43 .*ask for the undo again/) });
  });

  test('when a host cannot be read now, then it counts as changed (the undo does not act blind)', () => {
    const r = recheckConfirmedPlan(plan, { hsb0: { inFleet: true, error: 'connection refused' }, gpc0: { inFleet: true, generation: g(44, 'gpc0') } });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/hsb0 could not be read \(connection refused\)/);
    expect(recheckConfirmedPlan(plan, { gpc0: { inFleet: true, generation: g(44, 'gpc0') } }).ok).toBe(false);
  });

  test('hosts the plan leaves alone never refuse it; nothing to roll back always holds', () => {
    expect(recheckConfirmedPlan({ hosts: [] }, { hsb0: { inFleet: true, error: 'down' } })).toEqual({ ok: true });
    expect(recheckConfirmedPlan({ hosts: [plan.hosts[0] as UndoHost] }, { hsb0: { inFleet: true, generation: g(43, 'hsb0') }, gpc0: { inFleet: true, error: 'down' } })).toEqual({ ok: true });
  });

  test('property: it holds exactly when every planned host reads the store path it was confirmed on, and the changes are those hosts, in plan order', () => {
    const gen = fc.record({ number: fc.integer({ min: 1, max: 60 }), storePath: fc.constantFrom('/nix/store/a', '/nix/store/b', '/nix/store/c') });
    const arb = fc.uniqueArray(fc.record({ name: fc.constantFrom('h1', 'h2', 'h3', 'h4', 'h5'), from: gen, to: gen, now: fc.option(gen, { nil: undefined }) }), { selector: (h) => h.name });
    fc.assert(
      fc.property(arb, (hs) => {
        const p = { hosts: hs.map((h) => host(h.name, h.from, h.to)) };
        const now: Record<string, HostNow> = Object.fromEntries(hs.map((h) => [h.name, h.now ? { inFleet: true, generation: h.now } : { inFleet: true, error: 'down' }]));
        const changed = hs.filter((h) => h.now?.storePath !== h.from.storePath).map((h) => h.name);
        const r = recheckConfirmedPlan(p, now);
        return changed.length === 0 ? r.ok : !r.ok && r.changes.map((c) => c.name).join() === changed.join();
      }),
    );
  });
});
