/**
 * Errors of the host layer, each with a stable `code`. The activities map them by class onto the one
 * FailureType vocabulary (src/domain/activities.ts), which decides what is retried: after
 * HostUnreachable nothing ran; after ConnectionLost or CommandTimeout the command may or may not have
 * completed, so the host must be re-inspected (readGeneration) before anything else is decided.
 */

/**
 * What an operator needs of a failed command's error output: its last non-empty lines (nix prints the
 * cause last, e.g. `error: the group 'nixbld' specified in 'build-users-group' does not exist`),
 * joined with ` | ` (a line repeated at once counted once), at most `maxChars` characters (the start is cut, the cause kept). Control
 * characters other than tab become spaces, so the text is safe in a terminal, a log line or HTML.
 */
export function errorLines(stderr: string, maxLines = 4, maxChars = 500): string {
  const lines = stderr
    .replace(/\r\n?/g, '\n')
    .split('\n')
    // eslint-disable-next-line no-control-regex
    .map((l) => l.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, ' ').trim())
    .filter((l, i, all) => l.length > 0 && l !== all[i - 1]);
  const text = lines.slice(-maxLines).join(' | ');
  return text.length > maxChars ? `…${text.slice(text.length - maxChars + 1)}` : text;
}

export type HostErrorCode =
  | 'HOST_UNREACHABLE'
  | 'CONNECTION_LOST'
  | 'COMMAND_TIMEOUT'
  | 'HOST_KEY_MISMATCH'
  | 'AUTH_FAILED'
  | 'COMMAND_FAILED'
  | 'UNEXPECTED_OUTPUT'
  | 'ROLLBACK_TARGET_MISSING'
  | 'TARGET_MISMATCH'
  | 'INVALID_INPUT'
  | 'HOST_BUSY'
  | 'COMMAND_CANCELLED';

export abstract class HostError extends Error {
  abstract readonly code: HostErrorCode;
  constructor(
    message: string,
    readonly host: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Nothing reached the host (ECONNREFUSED, no route, handshake timeout): no command ran. */
export class HostUnreachableError extends HostError {
  readonly code = 'HOST_UNREACHABLE' as const;
  constructor(
    host: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${host}: unreachable (${reason}); nothing ran`, host, options);
  }
}

/**
 * The connection dropped while a command ran (channel closed without an exit status, keepalive
 * timeout, reset): the outcome is UNKNOWN and the host must be re-inspected.
 */
export class ConnectionLostError extends HostError {
  readonly code = 'CONNECTION_LOST' as const;
  constructor(
    host: string,
    readonly command: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${host}: connection lost while running a command (${reason}); its outcome is unknown: re-inspect the host`, host, options);
  }
}

/** The command did not finish within its deadline; it was signalled and may have done part of its work. */
export class CommandTimeoutError extends HostError {
  readonly code = 'COMMAND_TIMEOUT' as const;
  constructor(
    host: string,
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`${host}: command did not finish within ${timeoutMs} ms; its outcome is unknown: re-inspect the host`, host);
  }
}

/**
 * Another activation holds the host's activation lock (an earlier attempt's, still running after its
 * timeout or a lost connection): this one was not started. Retryable: the retry re-reads the host.
 */
export class HostBusyError extends HostError {
  readonly code = 'HOST_BUSY' as const;
  constructor(
    host: string,
    readonly command: string,
    lock: string = ACTIVATION_LOCK,
  ) {
    super(`${host}: another activation is still running on the host (it holds ${lock}); not started a second time`, host);
  }
}

/** The caller cancelled (the activity was cancelled): the remote command was sent KILL; part of it may have run. */
export class CommandCancelledError extends HostError {
  readonly code = 'COMMAND_CANCELLED' as const;
  constructor(
    host: string,
    readonly command: string,
  ) {
    super(`${host}: cancelled; the remote command was stopped (KILL): re-inspect the host`, host);
  }
}

/** The host-wide lock every activation of the deployer takes (flock; /run is emptied at boot). */
export const ACTIVATION_LOCK = '/run/nixfleet-activation.lock';
/** The exit status when the lock is held (`flock -n 9 || exit 75`): distinct from switch-to-configuration's 0-4 and 100. */
export const LOCK_BUSY_EXIT = 75;

/** The host presented a key that is not pinned for it (unknown host, or a changed key). Never retried. */
export class HostKeyMismatchError extends HostError {
  readonly code = 'HOST_KEY_MISMATCH' as const;
  constructor(
    host: string,
    readonly reason: 'unknown' | 'changed' | 'revoked',
    /** SHA256 fingerprint of the key the host presented, OpenSSH style (`SHA256:…`). */
    readonly presentedFingerprint: string,
  ) {
    super(
      reason === 'unknown'
        ? `${host}: host key ${presentedFingerprint} is not known for this host; refusing to connect (pin it in known_hosts)`
        : reason === 'revoked'
          ? `${host}: host key ${presentedFingerprint} is revoked; refusing to connect`
          : `${host}: HOST KEY CHANGED: the host presented ${presentedFingerprint}, which does not match the pinned key; refusing to connect`,
      host,
    );
  }
}

export class AuthenticationFailedError extends HostError {
  readonly code = 'AUTH_FAILED' as const;
  constructor(host: string, user: string, options?: { cause?: unknown }) {
    super(`${host}: authentication as ${user} failed (key not authorized)`, host, options);
  }
}

/** A command ran and exited non-zero (or was killed by a signal). */
export class CommandFailedError extends HostError {
  readonly code = 'COMMAND_FAILED' as const;
  constructor(
    host: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stderrTail: string,
  ) {
    super(
      `${host}: command failed with ${exitCode !== null ? `exit code ${exitCode}` : `signal ${String(signal)}`}: ${
        errorLines(stderrTail, 3) || '(no stderr)'
      }`,
      host,
    );
  }
}

/** The host answered something this code does not understand (e.g. a profile link of an unexpected shape). */
export class UnexpectedOutputError extends HostError {
  readonly code = 'UNEXPECTED_OUTPUT' as const;
  constructor(host: string, what: string, readonly output: string) {
    super(`${host}: unexpected ${what}: ${JSON.stringify(output.slice(0, 300))}`, host);
  }
}

/** The recorded generation to roll back to no longer exists or points elsewhere: refuse rather than guess. */
export class RollbackTargetMissingError extends HostError {
  readonly code = 'ROLLBACK_TARGET_MISSING' as const;
  constructor(host: string, detail: string) {
    super(`${host}: cannot roll back: ${detail}`, host);
  }
}

/** The flake built to a different store path than the deployer expected. */
export class TargetMismatchError extends HostError {
  readonly code = 'TARGET_MISMATCH' as const;
  constructor(
    host: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${host}: the flake builds ${actual}, expected ${expected}`, host);
  }
}

/** An input failed validation before anything reached a shell; `field` names it. */
export class InvalidInputError extends Error {
  readonly code = 'INVALID_INPUT' as const;
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'InvalidInputError';
  }
}
