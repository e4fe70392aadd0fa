/**
 * hostChange: whether a failed host changed is decided from what the host said, never from the
 * error's class alone.
 */
import fc from 'fast-check';
import { hostChange } from '../../src/domain/host-change';

const gen = fc.record({ number: fc.integer({ min: 1, max: 1000 }), storePath: fc.constantFrom('/nix/store/a', '/nix/store/b', '/nix/store/c') });
const types = fc.constantFrom('SwitchFailed', 'ConnectionLost', 'HostUnreachable', 'VerifyFailed', 'HostError', 'HostKeyMismatch', 'TimeoutFailure', 'InvalidInput');

test('once the switch returned another generation, the host moved, whatever failed next', () => {
  fc.assert(
    fc.property(gen, gen, types, fc.option(fc.boolean(), { nil: undefined }), (before, after, failureType, switchProfileMoved) => {
      fc.pre(before.number !== after.number || before.storePath !== after.storePath);
      expect(hostChange({ before, after, failureType, switchProfileMoved })).toEqual({ kind: 'moved' });
    }),
  );
});

test('before the switch returned, only a SwitchFailed (which re-read the host) says unchanged; every other failure is in doubt', () => {
  fc.assert(
    fc.property(gen, types, fc.boolean(), (before, failureType, moved) => {
      const c = hostChange({ before, failureType, switchProfileMoved: moved });
      if (failureType === 'SwitchFailed') expect(c).toEqual({ kind: moved ? 'moved' : 'unchanged' });
      else expect(c).toEqual({ kind: 'uncertain' });
    }),
  );
});

test('examples: a health check that cannot run after the switch; an authentication failure during the switch; nothing recorded', () => {
  const before = { number: 42, storePath: '/nix/store/old' };
  const after = { number: 43, storePath: '/nix/store/new' };
  expect(hostChange({ before, after, failureType: 'HostError' })).toEqual({ kind: 'moved' });
  expect(hostChange({ before, failureType: 'HostKeyMismatch' })).toEqual({ kind: 'uncertain' });
  expect(hostChange({ before, after: before, failureType: 'TimeoutFailure' })).toEqual({ kind: 'unchanged' });
  expect(hostChange({ failureType: 'HostUnreachable' })).toEqual({ kind: 'uncertain' });
});
