/**
 * One FailureType vocabulary: the retry policies and the benchmark take their non-retryable list from
 * src/domain/activities.ts, and every type in it is one of the vocabulary.
 */
import { FailureType, NON_RETRYABLE_FAILURES } from '../../src/domain/activities';
import { auditStep, githubStep, hostStep, NON_RETRYABLE, readStep } from '../../workflows/common';

test('every retry policy refuses exactly the one non-retryable list, each a FailureType', () => {
  const vocabulary = new Set<string>(Object.values(FailureType));
  for (const t of NON_RETRYABLE_FAILURES) expect(vocabulary.has(t)).toBe(true);
  for (const options of [hostStep, readStep, githubStep, auditStep]) expect(options.retry?.nonRetryableErrorTypes).toEqual([...NON_RETRYABLE_FAILURES]);
  expect(NON_RETRYABLE).toEqual([...NON_RETRYABLE_FAILURES]);
  // What the benchmark's copy had lost.
  expect(NON_RETRYABLE).toEqual(expect.arrayContaining(['AuditRefused', 'BuildFailed']));
  // What must stay retryable: a lost connection, an unreachable or busy host, a transient GitHub error.
  for (const t of [FailureType.ConnectionLost, FailureType.HostUnreachable, FailureType.HostBusy, FailureType.GitHubTransient]) expect(NON_RETRYABLE).not.toContain(t);
});
