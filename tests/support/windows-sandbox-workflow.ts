import { windowAt, type MaintenanceWindow, type WindowState } from '../../src/domain/windows';

/** The window arithmetic run in the workflow sandbox (tests/domain/windows.test.ts compares it with Node's). */
export async function windowsInSandbox(windows: MaintenanceWindow[], probes: number[]): Promise<WindowState[]> {
  return probes.map((t) => windowAt(windows, t));
}
