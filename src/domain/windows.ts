/**
 * Maintenance windows: when a deployment (and each of its waves) may start. Pure and deterministic for
 * a given time-zone database; safe in workflow code (it uses only `Intl.DateTimeFormat`, which the
 * workflow sandbox provides with the worker's ICU data; tests/domain/windows.test.ts checks it there).
 *
 * A window opens on each of its `days` at `start` (local time in `timeZone`) and closes at `end` the
 * same day, or the next day when `end` is not after `start` (a window across midnight). In instants:
 * - it opens at the first instant at which the local clock reads `start` or later: a start inside a
 *   spring-forward gap (02:30 on the day clocks jump from 02:00 to 03:00) opens at the jump;
 * - a local time that happens twice (the fall-back hour) is taken the first time, and a window closes
 *   the first time its `end` is reached (it does not reopen because the clock repeats an hour).
 * Overlapping or touching windows are one: the close is the end of their union.
 */

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** A window as the fleet file states it: `{days: [mon, tue], start: "02:00", end: "05:00", timeZone: "Europe/Berlin"}`. */
export interface MaintenanceWindow {
  days: Weekday[];
  /** `HH:MM` or `HH:MM:SS`, 24-hour local time. */
  start: string;
  end: string;
  /** An IANA time zone name (`Europe/Berlin`, `UTC`). */
  timeZone: string;
}

/**
 * Where an instant stands: inside a window (until `closesAt`; `opensAt` is when it opened, looking back
 * at most two days), or waiting for the one that opens at `opensAt`. Windows that chain into one for
 * weeks (every day, end touching the next start) are open for good; their `closesAt` is a horizon.
 */
export type WindowState = { inside: true; opensAt: number; closesAt: number } | { inside: false; opensAt: number; closesAt: number };

const DAY_MS = 86_400_000;
const TIME = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;

/** Seconds after local midnight of `HH:MM[:SS]`; undefined when it is not one. */
export function parseTimeOfDay(s: string): number | undefined {
  const m = TIME.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3] ?? 0);
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** An IANA zone name this runtime knows (`Europe/Berlin`, `UTC`); not an offset such as `+01:00`. */
export function isTimeZone(name: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/.test(name) || name.length > 64) return false;
  try {
    formatter(name);
    return true;
  } catch {
    return false;
  }
}

/** The local wall-clock time of `t` in `timeZone`, as milliseconds of a UTC date with the same fields (whole seconds). */
export function wallClock(t: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(Math.floor(t / 1000) * 1000))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return Date.UTC(parts.year as number, (parts.month as number) - 1, parts.day as number, parts.hour as number, parts.minute as number, parts.second as number);
}

/** The first instant (whole second) at which the local clock in `timeZone` reads `local` or later. */
export function instantOf(local: number, timeZone: string): number {
  const offsetAt = (t: number): number => wallClock(t, timeZone) - Math.floor(t / 1000) * 1000;
  const candidates = [local - offsetAt(local - DAY_MS / 2), local - offsetAt(local + DAY_MS / 2)].sort((a, b) => a - b);
  const exact = candidates.find((u) => wallClock(u, timeZone) === local);
  if (exact !== undefined) return exact;
  // In a gap: the clock jumps over `local` between the two candidates; find the jump (to the second).
  let lo = candidates[0] as number; // wall < local
  let hi = candidates[1] as number; // wall > local
  if (wallClock(lo, timeZone) > local) return lo;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (wallClock(mid, timeZone) >= local) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The windows' opening intervals that could matter around `t` ([open, close) instants), sorted and merged. */
function intervalsAround(windows: MaintenanceWindow[], t: number, daysAhead: number): Array<[number, number]> {
  const raw: Array<[number, number]> = [];
  for (const w of windows) {
    const start = parseTimeOfDay(w.start);
    const end = parseTimeOfDay(w.end);
    if (start === undefined || end === undefined) throw new Error(`not a time of day: ${start === undefined ? w.start : w.end}`);
    const days = new Set(w.days.map((d) => WEEKDAYS.indexOf(d)));
    const today = Math.floor(wallClock(t, w.timeZone) / DAY_MS) * DAY_MS;
    for (let k = -2; k <= daysAhead; k++) {
      const midnight = today + k * DAY_MS;
      if (!days.has(new Date(midnight).getUTCDay())) continue;
      const open = instantOf(midnight + start * 1000, w.timeZone);
      const close = instantOf(midnight + (end > start ? 0 : DAY_MS) + end * 1000, w.timeZone);
      if (close > open) raw.push([open, close]);
    }
  }
  raw.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [o, c] of raw) {
    const last = merged[merged.length - 1];
    if (last && o <= last[1]) last[1] = Math.max(last[1], c);
    else merged.push([o, c]);
  }
  return merged;
}

/**
 * Where the instant `t` (ms since the epoch) stands against the windows: inside one (opened at
 * `opensAt`, closes at `closesAt`), or outside, with the next window's opening and close. Throws
 * when there are no windows, or none opens within the next two weeks (every window with days opens
 * at least once a week).
 */
export function windowAt(windows: MaintenanceWindow[], t: number): WindowState {
  if (windows.length === 0) throw new Error('no maintenance windows');
  const intervals = intervalsAround(windows, t, 15);
  for (const [open, close] of intervals) {
    if (open <= t && t < close) return { inside: true, opensAt: open, closesAt: close };
    if (open > t) return { inside: false, opensAt: open, closesAt: close };
  }
  throw new Error('no maintenance window opens within two weeks');
}

/** Milliseconds to wait from `t` until a window is open (0: one is open now). No windows: never wait. */
export function waitForWindow(windows: MaintenanceWindow[] | undefined, t: number): number {
  if (!windows || windows.length === 0) return 0;
  const w = windowAt(windows, t);
  return w.inside ? 0 : w.opensAt - t;
}

/** One line for people: `Mon-Fri 02:00-05:00 Europe/Berlin; Sat 22:00-04:00 UTC`. */
export function describeWindows(windows: MaintenanceWindow[]): string {
  const cap = (d: string): string => d.charAt(0).toUpperCase() + d.slice(1);
  return windows.map((w) => `${w.days.map(cap).join(',')} ${w.start}-${w.end} ${w.timeZone}`).join('; ');
}
