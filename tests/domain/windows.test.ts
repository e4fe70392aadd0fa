/**
 * Maintenance-window arithmetic (src/domain/windows.ts): weekday windows, windows across midnight,
 * the two DST transitions, and the same answers inside the workflow sandbox (Intl with time zones).
 */
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { describeWindows, instantOf, isTimeZone, parseTimeOfDay, waitForWindow, windowAt, type MaintenanceWindow } from '../../src/domain/windows';
import { parseWith, FleetFile, InputError } from '../../src/schemas/fleet.schema';
import { timeSkippingServer } from '../../testkit/time-skipping';

const at = (iso: string): number => Date.parse(iso);
const iso = (t: number): string => new Date(t).toISOString();
const weekdays: MaintenanceWindow = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '05:00', timeZone: 'Europe/Berlin' };

test('when inside a weekday window, then it says when the window closes; after it, the next weekday opening', () => {
  // Monday 2026-11-30, 02:30 in Berlin (CET, UTC+1).
  expect(windowAt([weekdays], at('2026-11-30T01:30:00Z'))).toEqual({ inside: true, opensAt: at('2026-11-30T01:00:00Z'), closesAt: at('2026-11-30T04:00:00Z') });
  // Friday 05:00 local: closed; next is Monday 02:00.
  const s = windowAt([weekdays], at('2026-12-04T04:00:00Z'));
  expect(s.inside).toBe(false);
  expect(iso(s.opensAt)).toBe('2026-12-07T01:00:00.000Z');
  expect(waitForWindow([weekdays], at('2026-12-04T04:00:00Z'))).toBe(at('2026-12-07T01:00:00Z') - at('2026-12-04T04:00:00Z'));
  expect(waitForWindow(undefined, 0)).toBe(0);
  expect(waitForWindow([weekdays], at('2026-11-30T01:30:00Z'))).toBe(0);
});

test('when a window crosses midnight, then it opens on its day and closes the next morning', () => {
  const sat: MaintenanceWindow = { days: ['sat'], start: '22:00', end: '04:00:30', timeZone: 'UTC' };
  // Sunday 2026-12-06 03:00 UTC: inside Saturday's window.
  expect(windowAt([sat], at('2026-12-06T03:00:00Z'))).toEqual({ inside: true, opensAt: at('2026-12-05T22:00:00Z'), closesAt: at('2026-12-06T04:00:30Z') });
  // Saturday 21:00: waiting one hour.
  expect(windowAt([sat], at('2026-12-05T21:00:00Z'))).toEqual({ inside: false, opensAt: at('2026-12-05T22:00:00Z'), closesAt: at('2026-12-06T04:00:30Z') });
});

test('when a window starts in the spring-forward gap, then it opens at the jump; its length is an hour shorter', () => {
  // Europe/Berlin, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
  const w: MaintenanceWindow = { days: ['sun'], start: '02:30', end: '04:00', timeZone: 'Europe/Berlin' };
  expect(windowAt([w], at('2026-03-29T00:00:00Z'))).toEqual({ inside: false, opensAt: at('2026-03-29T01:00:00Z'), closesAt: at('2026-03-29T02:00:00Z') });
  expect(instantOf(Date.UTC(2026, 2, 29, 2, 30), 'Europe/Berlin')).toBe(at('2026-03-29T01:00:00Z'));
  // America/New_York, Sunday 2026-03-08 02:00 EST becomes 03:00 EDT (07:00 UTC).
  expect(instantOf(Date.UTC(2026, 2, 8, 2, 15), 'America/New_York')).toBe(at('2026-03-08T07:00:00Z'));
});

test('when a window spans the fall-back hour, then a repeated time is taken the first time and the window is an hour longer', () => {
  // Europe/Berlin, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice.
  const w: MaintenanceWindow = { days: ['sun'], start: '02:30', end: '03:30', timeZone: 'Europe/Berlin' };
  expect(windowAt([w], at('2026-10-24T12:00:00Z'))).toEqual({ inside: false, opensAt: at('2026-10-25T00:30:00Z'), closesAt: at('2026-10-25T02:30:00Z') });
  // Ends in the repeated hour: closes the first time 02:30 is reached, not again an hour later.
  const early: MaintenanceWindow = { days: ['sun'], start: '01:00', end: '02:30', timeZone: 'Europe/Berlin' };
  const s = windowAt([early], at('2026-10-25T00:45:00Z'));
  expect(s).toEqual({ inside: false, opensAt: at('2026-11-01T00:00:00Z'), closesAt: at('2026-11-01T01:30:00Z') });
});

test('when windows overlap or touch, then they count as one', () => {
  const a: MaintenanceWindow = { days: ['mon'], start: '01:00', end: '03:00', timeZone: 'UTC' };
  const b: MaintenanceWindow = { days: ['mon'], start: '03:00', end: '04:00', timeZone: 'UTC' };
  const c: MaintenanceWindow = { days: ['mon'], start: '03:30', end: '06:00', timeZone: 'UTC' };
  expect(windowAt([a, b, c], at('2026-11-30T02:00:00Z'))).toEqual({ inside: true, opensAt: at('2026-11-30T01:00:00Z'), closesAt: at('2026-11-30T06:00:00Z') });
  expect(describeWindows([weekdays])).toBe('Mon,Tue,Wed,Thu,Fri 02:00-05:00 Europe/Berlin');
});

test('when the fleet file names windows, then bad ones are refused with the field named', () => {
  const base = { repository: { owner: 'acme', name: 'fleet' }, hosts: [{ name: 'h1', address: '10.0.0.1', kind: 'nixos' }] };
  const parse = (windows: unknown): unknown => parseWith(FleetFile, { ...base, rollout: { windows } });
  expect(() => parse([{ ...weekdays, timeZone: 'Mars/Olympus' }])).toThrow(/rollout\.windows\[0\]\.timeZone: an IANA time zone name/);
  expect(() => parse([{ ...weekdays, timeZone: '+01:00' }])).toThrow(/rollout\.windows\[0\]\.timeZone/);
  expect(() => parse([{ ...weekdays, start: '24:00' }])).toThrow(/rollout\.windows\[0\]\.start: a time of day/);
  expect(() => parse([{ ...weekdays, days: ['monday'] }])).toThrow(/rollout\.windows\[0\]\.days\[0\]: a weekday: sun, mon/);
  expect(() => parse([{ ...weekdays, days: [] }])).toThrow(/rollout\.windows\[0\]\.days: at least one weekday/);
  expect(() => parse([{ ...weekdays, end: '02:00' }])).toThrow(/rollout\.windows\[0\]\.end: start and end must differ/);
  expect(() => parse([{ ...weekdays, extra: 1 }])).toThrow(InputError);
  expect(parse([weekdays])).toMatchObject({ rollout: { windows: [weekdays] } });
  expect(isTimeZone('UTC')).toBe(true);
  expect(isTimeZone('Asia/Kolkata')).toBe(true);
  expect(parseTimeOfDay('23:59:59')).toBe(86399);
  expect(parseTimeOfDay('7:00')).toBeUndefined();
});

test('when the window arithmetic runs inside the workflow sandbox, then Intl knows the time zones and gives the same answers', async () => {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: timeSkippingServer() } } });
  try {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'windows-sandbox',
      workflowBundle: await bundleWorkflowCode({ workflowsPath: require.resolve('../support/windows-sandbox-workflow'), logger: { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: console.error, log: () => undefined } }),
    });
    const probes = [at('2026-03-29T00:00:00Z'), at('2026-10-24T12:00:00Z'), at('2026-12-04T04:00:00Z'), at('2027-01-01T00:00:00Z')];
    const windows: MaintenanceWindow[] = [weekdays, { days: ['sun'], start: '02:30', end: '04:00', timeZone: 'Europe/Berlin' }, { days: ['sat'], start: '22:00', end: '04:00', timeZone: 'America/New_York' }];
    const inSandbox = await worker.runUntil(env.client.workflow.execute('windowsInSandbox', { taskQueue: 'windows-sandbox', workflowId: `windows-sandbox-${Date.now()}`, args: [windows, probes] }));
    expect(inSandbox).toEqual(probes.map((t) => windowAt(windows, t)));
  } finally {
    await env.teardown();
  }
}, 120_000);
