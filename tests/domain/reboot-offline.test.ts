/**
 * The rules of durable reboots and offline hosts (src/domain/reboot.ts, src/domain/offline.ts): unit
 * cases and fast-check properties. Pure functions, no I/O.
 */
import fc from 'fast-check';
import { needsReboot, nextProbeDelayMs, rebootVerdict, shouldReboot, type BootParts } from '../../src/domain/reboot';
import { offlineBuildGates, offlineDecision, type OfflineGate, type OfflinePolicy } from '../../src/domain/offline';

const store = fc.stringMatching(/^[a-z0-9]{4}$/).map((s) => `/nix/store/${s.padEnd(32, 'a')}-linux`);
const part = fc.option(store, { nil: null });
const parts: fc.Arbitrary<BootParts> = fc.record({ kernel: part, initrd: part, kernelModules: part });

describe('needsReboot', () => {
  test('when kernel, initrd and modules are the booted ones, then no reboot is needed', () => {
    const p = { kernel: '/nix/store/k', initrd: '/nix/store/i', kernelModules: '/nix/store/m' };
    expect(needsReboot(p, { ...p })).toEqual({ needed: false });
  });
  test('when only the kernel modules differ, then a reboot is needed and says which part', () => {
    const p = { kernel: '/nix/store/k', initrd: '/nix/store/i', kernelModules: '/nix/store/m' };
    expect(needsReboot(p, { ...p, kernelModules: '/nix/store/m2' })).toEqual({ needed: true, differs: ['kernelModules'], unknown: false });
  });
  test('when the booted system cannot be read, then a reboot is needed (unknown)', () => {
    const r = needsReboot(null, { kernel: '/nix/store/k', initrd: null, kernelModules: '/nix/store/m' });
    expect(r).toEqual({ needed: true, differs: ['kernel', 'kernelModules'], unknown: true });
  });
  test('property: needed exactly when some part differs; the parts named are exactly those', () => {
    fc.assert(
      fc.property(parts, parts, (a, b) => {
        const r = needsReboot(a, b);
        const differing = (['kernel', 'initrd', 'kernelModules'] as const).filter((k) => a[k] !== b[k]);
        if (differing.length === 0) return !r.needed;
        return r.needed && !r.unknown && JSON.stringify(r.differs) === JSON.stringify(differing);
      }),
    );
  });
  test('property: a system never needs a reboot to become itself', () => {
    fc.assert(fc.property(parts, (a) => !needsReboot(a, { ...a }).needed));
  });
});

describe('shouldReboot', () => {
  const needed = { needed: true as const, differs: ['kernel' as const], unknown: false };
  test('never (and no policy) never reboots; always always does; when-needed follows the need', () => {
    expect(shouldReboot(undefined, 'nixos', needed)).toBe(false);
    expect(shouldReboot('never', 'nixos', needed)).toBe(false);
    expect(shouldReboot('always', 'nixos', { needed: false })).toBe(true);
    expect(shouldReboot('when-needed', 'nixos', { needed: false })).toBe(false);
    expect(shouldReboot('when-needed', 'nixos', needed)).toBe(true);
  });
  test('a Home Manager host is never rebooted', () => {
    fc.assert(fc.property(fc.constantFrom('never', 'when-needed', 'always' as const), (p) => !shouldReboot(p as 'never', 'home-manager', needed)));
  });
});

describe('rebootVerdict', () => {
  const T = '/nix/store/t-new';
  test('a new boot of the expected system that is active is correct', () => {
    expect(rebootVerdict('b1', { bootId: 'b2', bootedSystem: T, currentSystem: T }, T)).toEqual({ kind: 'booted-expected' });
  });
  test('the same boot id is not a reboot, whatever the links say', () => {
    expect(rebootVerdict('b1', { bootId: 'b1', bootedSystem: T, currentSystem: T }, T)).toEqual({ kind: 'not-rebooted' });
  });
  test('a new boot of the old system is the wrong generation', () => {
    expect(rebootVerdict('b1', { bootId: 'b2', bootedSystem: '/nix/store/old', currentSystem: '/nix/store/old' }, T)).toEqual({ kind: 'wrong-generation', booted: '/nix/store/old', current: '/nix/store/old' });
  });
  test('property: correct only when the id changed and both links are the target', () => {
    fc.assert(
      fc.property(fc.constantFrom('a', 'b'), fc.constantFrom('a', 'b'), fc.option(fc.constantFrom(T, '/nix/store/x'), { nil: null }), fc.option(fc.constantFrom(T, '/nix/store/x'), { nil: null }), (b0, b1, booted, current) => {
        const v = rebootVerdict(b0, { bootId: b1, bootedSystem: booted, currentSystem: current }, T);
        return (v.kind === 'booted-expected') === (b0 !== b1 && booted === T && current === T) && (v.kind === 'not-rebooted') === (b0 === b1);
      }),
    );
  });
});

describe('nextProbeDelayMs', () => {
  test('property: never past the deadline, at least a second, null once the deadline passed', () => {
    fc.assert(
      fc.property(fc.nat(50), fc.integer({ min: -10_000, max: 3_600_000 }), (attempt, remaining) => {
        const d = nextProbeDelayMs(attempt, remaining);
        if (remaining <= 0) return d === null;
        return d !== null && d >= 1000 && d <= Math.max(1000, remaining) && d <= 30_000;
      }),
    );
  });
});

describe('offlineDecision', () => {
  const down = { reachable: false, error: 'ECONNREFUSED' };
  test('a reachable host is deployed, whatever the policy', () => {
    fc.assert(
      fc.property(fc.constantFrom<OfflinePolicy | undefined>(undefined, { mode: 'fail' }, { mode: 'skip' }, { mode: 'wait', waitSeconds: 60 }), fc.nat(), (p, waited) => offlineDecision(p, { reachable: true }, waited).kind === 'deploy'),
    );
  });
  test('fail (and no policy) fails; skip skips; both name the policy and the error', () => {
    const f = offlineDecision(undefined, down, 0);
    expect(f.kind).toBe('fail');
    expect(f.kind === 'fail' && f.reason).toMatch(/rollout\.offline: fail.*ECONNREFUSED/);
    const s = offlineDecision({ mode: 'skip' }, down, 0);
    expect(s.kind === 'skip' && s.reason).toMatch(/rollout\.offline: skip/);
  });
  test('wait waits within the deadline and fails past it (reported, never skipped)', () => {
    expect(offlineDecision({ mode: 'wait', waitSeconds: 60 }, down, 0).kind).toBe('wait');
    const late = offlineDecision({ mode: 'wait', waitSeconds: 60 }, down, 60_000);
    expect(late.kind).toBe('fail');
    expect(late.kind === 'fail' && late.reason).toMatch(/after waiting 60s/);
  });
  test('property: a wait never sleeps past the deadline by more than the 1 s floor, and ends in fail, not skip', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 86_400 }), fc.nat(100_000_000), fc.nat(40), (wait, waited, attempt) => {
        const d = offlineDecision({ mode: 'wait', waitSeconds: wait }, down, waited, attempt);
        const remaining = wait * 1000 - waited;
        if (remaining <= 0) return d.kind === 'fail';
        return d.kind === 'wait' && d.delayMs >= 1000 && d.delayMs <= Math.max(1000, remaining) && d.delayMs <= 30_000;
      }),
    );
  });
});

describe('offlineBuildGates (the probe before a build-first build)', () => {
  test('when a host is skipped in the build phase, then it leaves the rollout without a failure; when it fails there, then it is a build failure with the reason', () => {
    const r = offlineBuildGates([
      { host: 'a', kind: 'skip', reason: 'offline: skipped' },
      { host: 'b', kind: 'fail', reason: 'still unreachable after waiting 4s' },
    ]);
    expect(r).toEqual({ skipped: [{ host: 'a', reason: 'offline: skipped' }], failures: [{ host: 'b', error: 'still unreachable after waiting 4s' }] });
    expect(offlineBuildGates([])).toEqual({ skipped: [], failures: [] });
  });
  test('every gated host is either skipped or failed, never both, never lost, in order', () => {
    const gate: fc.Arbitrary<OfflineGate> = fc.record({ host: fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/), kind: fc.constantFrom<'skip' | 'fail'>('skip', 'fail'), reason: fc.string() });
    fc.assert(
      fc.property(fc.uniqueArray(gate, { selector: (g) => g.host }), (gates) => {
        const r = offlineBuildGates(gates);
        expect(r.skipped.map((s) => s.host)).toEqual(gates.filter((g) => g.kind === 'skip').map((g) => g.host));
        expect(r.failures.map((f) => f.host)).toEqual(gates.filter((g) => g.kind === 'fail').map((g) => g.host));
        expect(r.skipped.length + r.failures.length).toBe(gates.length);
      }),
    );
  });
});
