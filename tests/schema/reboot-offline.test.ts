/** The fleet file's rollout.reboot, rollout.rebootTimeout and rollout.offline: parsed, defaulted, refused with the field named. */
import { FleetFile, parseWith, rolloutOf } from '../../src/schemas/fleet.schema';

const base = { repository: { owner: 'acme', name: 'fleet' }, hosts: [{ name: 'h1', address: 'h1.example.net', kind: 'nixos' }] };
const parse = (rollout: unknown) => parseWith(FleetFile, { ...base, rollout });

test('when reboot and offline are set, then the workflow gets them (wait in seconds, the timeout defaulted to 10m)', () => {
  const r = rolloutOf(parse({ reboot: 'when-needed', offline: 'wait 8h' }));
  expect(r).toMatchObject({ reboot: 'when-needed', rebootTimeoutSeconds: 600, offline: { mode: 'wait', waitSeconds: 8 * 3600 } });
  expect(rolloutOf(parse({ reboot: 'always', rebootTimeout: '90s', offline: 'skip' }))).toMatchObject({ reboot: 'always', rebootTimeoutSeconds: 90, offline: { mode: 'skip' } });
  expect(rolloutOf(parse({ offline: 'fail' })).offline).toEqual({ mode: 'fail' });
});

test('when neither is set, then the rollout is what it always was (no reboot, no probe)', () => {
  const r = rolloutOf(parse({}));
  expect('reboot' in r).toBe(false);
  expect('offline' in r).toBe(false);
});

test('when a value is wrong, then the error names the field', () => {
  expect(() => parse({ reboot: 'sometimes' })).toThrow(/rollout\.reboot/);
  expect(() => parse({ offline: 'wait' })).toThrow(/rollout\.offline: fail, skip, or wait DURATION/);
  expect(() => parse({ offline: 'wait 8x' })).toThrow(/rollout\.offline/);
  expect(() => parse({ offline: 'wait 30d' })).toThrow(/rollout\.offline: wait: at most 7d/);
  expect(() => parse({ offline: 'skip; rm -rf /' })).toThrow(/rollout\.offline/);
  expect(() => parse({ rebootTimeout: '7h' })).toThrow(/rollout\.rebootTimeout: at most 6h/);
});
