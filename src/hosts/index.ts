export { HostSession } from './session';
export type { HostSessionOptions, ExecOptions, ExecResult } from './session';
export {
  HostError,
  HostUnreachableError,
  ConnectionLostError,
  CommandTimeoutError,
  HostKeyMismatchError,
  AuthenticationFailedError,
  CommandFailedError,
  UnexpectedOutputError,
  RollbackTargetMissingError,
  TargetMismatchError,
  InvalidInputError,
  errorLines,
} from './errors';
export type { HostErrorCode } from './errors';
export {
  shellQuote,
  validateFlakeRef,
  validateFlakeAttr,
  validateStorePath,
  validateGeneration,
  validateUser,
  validateAbsolutePath,
  validateTemplate,
  renderTemplate,
} from './shell';
export { parseKnownHosts, verifyHostKey, knownHostsName, fingerprint, parsePublicKey } from './known-hosts';
export {
  readGeneration,
  switchTo,
  rollbackTo,
  buildTarget,
  failedUnits,
  runCheckCommand,
  planSwitchCommands,
  confirmSelfRollback,
  confirmedActivation,
  gcRootDir,
  gcRootName,
  pinRecorded,
  pinStorePath,
  unpinStorePath,
  listGenerations,
  validateHostCommands,
  NIXOS_SYSTEM_PROFILE,
} from './operations';
export type {
  HostTarget,
  HostCommandTemplates,
  HostGeneration,
  SwitchOptions,
  SwitchResult,
  SwitchPhase,
  RollbackResult,
  BuildResult,
  TimeoutOptions,
  ConfirmOptions,
} from './operations';
