/**
 * The self-rollback unit an attempt arms: unique to the workflow run (a re-run of the same deployment
 * id never meets the elapsed, still loaded, timer of an earlier run), a valid systemd unit name, and
 * one the host's allowlist accepts.
 */
import fc from 'fast-check';
import { confirmUnit, confirmUnitForRun } from '../../src/domain/activities';

const ALLOWLIST_UNIT = /^nixfleet-rollback-[A-Za-z0-9._-]{1,180}$/;
const SYSTEMD_UNIT = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,200}$/;

test('same run, same unit (switch and confirmation agree); another run, another unit; always valid and allowed', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 300 }), fc.uuid(), fc.uuid(), (deploymentId, run1, run2) => {
      const base = confirmUnit(deploymentId);
      const a = confirmUnitForRun(base, run1);
      expect(confirmUnitForRun(base, run1)).toBe(a);
      if (run1.replace(/-/g, '').slice(0, 12) !== run2.replace(/-/g, '').slice(0, 12)) expect(confirmUnitForRun(base, run2)).not.toBe(a);
      expect(a).toMatch(SYSTEMD_UNIT);
      expect(a).toMatch(ALLOWLIST_UNIT);
      // systemd's UNIT_NAME_MAX is 256, with the suffix of the activation unit.
      expect(`${a}-activate.service`.length).toBeLessThanOrEqual(256);
    }),
  );
  const long = confirmUnitForRun(confirmUnit('x'.repeat(400)), '01a23334-3531-76a4-805a-84c17fe5273a');
  expect(long).toMatch(ALLOWLIST_UNIT);
  expect(long.endsWith('-01a2333435317')).toBe(false);
  expect(long.endsWith('-01a233343531')).toBe(true);
});
