/**
 * hostStepTimeouts: the activity timeouts of host steps follow the fleet's build, activation and
 * health timeouts, and an attempt always outlasts the remote commands it may send (so the activity's
 * own limit stops them before Temporal starts another attempt).
 */
import fc from 'fast-check';
import { DEFAULT_HOST_TIMEOUTS, hostStepTimeouts, READS_ALLOWANCE_MS, type HostStepKind } from '../../src/domain/host-timeouts';

const timeouts = fc.record({
  buildSeconds: fc.integer({ min: 1, max: 24 * 3600 }),
  activationSeconds: fc.integer({ min: 1, max: 2 * 3600 }),
  healthSeconds: fc.integer({ min: 1, max: 3600 }),
});
const steps = fc.constantFrom<HostStepKind>('build', 'switch', 'rollback', 'health', 'read');

test('every step outlasts the most its remote commands may take, with room for its reads', () => {
  fc.assert(
    fc.property(timeouts, steps, (t, step) => {
      const d = hostStepTimeouts(step, t);
      const sends = { build: [1, 0, 0], switch: [1, 3, 0], rollback: [0, 3, 0], health: [0, 0, 1], read: [0, 0, 0] }[step];
      const most = (sends[0] ?? 0) * t.buildSeconds * 1000 + (sends[1] ?? 0) * t.activationSeconds * 1000 + (sends[2] ?? 0) * t.healthSeconds * 1000;
      expect(d.startToCloseMs).toBeGreaterThanOrEqual(most + READS_ALLOWANCE_MS);
      expect(d.remote.buildTimeoutMs).toBe(t.buildSeconds * 1000);
      expect(d.remote.activateTimeoutMs).toBe(t.activationSeconds * 1000);
      if (d.heartbeatMs !== undefined) expect(d.heartbeatMs).toBeLessThan(d.startToCloseMs);
    }),
  );
});

test('the steps that run long commands heartbeat; a longer build lengthens the build and the switch, never the rollback', () => {
  fc.assert(
    fc.property(timeouts, fc.integer({ min: 1, max: 3600 }), (t, more) => {
      for (const s of ['build', 'switch', 'rollback'] as const) expect(hostStepTimeouts(s, t).heartbeatMs).toBeDefined();
      const longer = { ...t, buildSeconds: t.buildSeconds + more };
      expect(hostStepTimeouts('build', longer).startToCloseMs).toBeGreaterThan(hostStepTimeouts('build', t).startToCloseMs);
      expect(hostStepTimeouts('switch', longer).startToCloseMs).toBeGreaterThan(hostStepTimeouts('switch', t).startToCloseMs);
      expect(hostStepTimeouts('rollback', longer).startToCloseMs).toBe(hostStepTimeouts('rollback', t).startToCloseMs);
    }),
  );
});

test('defaults fit a 40-minute build: the switch and the build attempt outlast 40 minutes of building plus the activations', () => {
  expect(DEFAULT_HOST_TIMEOUTS.buildSeconds).toBeGreaterThanOrEqual(40 * 60);
  expect(hostStepTimeouts('switch').startToCloseMs).toBeGreaterThan(40 * 60_000 + 3 * DEFAULT_HOST_TIMEOUTS.activationSeconds * 1000);
  expect(hostStepTimeouts('build').startToCloseMs).toBeGreaterThan(40 * 60_000);
  expect(hostStepTimeouts('switch', {}).startToCloseMs).toBe(hostStepTimeouts('switch').startToCloseMs);
});
