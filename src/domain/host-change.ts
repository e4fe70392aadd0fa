/**
 * Did a host that failed change? Decided from what the host said (the generation recorded before, the
 * generation its switch returned, the details of a SwitchFailed, which re-read the host), never from
 * the class of the error alone. Pure: used by the wave workflow, tested in tests/property.
 */
import { FailureType } from './activities';
import type { Generation } from './deployment';

export type HostChange =
  /** The host is on another generation than the recorded one: roll it back. */
  | { kind: 'moved' }
  /** Nothing says what the host did: the compensation reads it (a rollback to where it is is a no-op). */
  | { kind: 'uncertain' }
  /** The host said it did not move (SwitchFailed with profileMoved false), or nothing was recorded. */
  | { kind: 'unchanged' };

export interface FailedHostFacts {
  /** The generation recorded before the switch; undefined if the record itself failed. */
  before?: Generation;
  /** The generation the switch returned; undefined if the switch did not return. */
  after?: Generation;
  /** The failure's type (FailureType or a Temporal failure name). */
  failureType: string;
  /** For SwitchFailed: whether the host's profile had moved (read from the host after the failure). */
  switchProfileMoved?: boolean;
}

export function hostChange(f: FailedHostFacts): HostChange {
  if (f.before === undefined) return { kind: 'uncertain' };
  if (f.after !== undefined) return f.after.number !== f.before.number || f.after.storePath !== f.before.storePath ? { kind: 'moved' } : { kind: 'unchanged' };
  if (f.failureType === FailureType.SwitchFailed) return f.switchProfileMoved === true ? { kind: 'moved' } : { kind: 'unchanged' };
  return { kind: 'uncertain' };
}
