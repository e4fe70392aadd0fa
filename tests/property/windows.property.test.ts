/**
 * windowAt (src/domain/windows.ts) over random windows, zones (with and without DST, half-hour and
 * 30-minute DST shifts) and instants: the answer is inside a window, no window opens between the
 * instant and the answer, a window's opening is one of its starts (or a DST jump over it), and in
 * zones without DST it agrees with reading the wall clock.
 */
import fc from 'fast-check';
import { parseTimeOfDay, wallClock, WEEKDAYS, windowAt, type MaintenanceWindow } from '../../src/domain/windows';

const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Australia/Lord_Howe', 'Asia/Kolkata', 'Asia/Tokyo', 'America/Santiago', 'Pacific/Chatham'];
const FIXED = ['UTC', 'Asia/Kolkata', 'Asia/Tokyo'];
const pad = (n: number): string => String(n).padStart(2, '0');
const time = fc.integer({ min: 0, max: 86399 }).map((s) => `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}${s % 60 ? `:${pad(s % 60)}` : ''}`);
const window = (zones: string[]) =>
  fc
    .record({ days: fc.uniqueArray(fc.constantFrom(...WEEKDAYS), { minLength: 1, maxLength: 7 }), start: time, end: time, timeZone: fc.constantFrom(...zones) })
    .filter((w) => w.start !== w.end) as fc.Arbitrary<MaintenanceWindow>;
const instant = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2032, 0, 1) }).map((t) => Math.floor(t / 1000) * 1000);

test('the answer is inside a window; outside, no window opens between now and the answer', () => {
  fc.assert(
    fc.property(fc.array(window(ZONES), { minLength: 1, maxLength: 3 }), instant, fc.double({ min: 0, max: 1, noNaN: true }), (ws, t, f) => {
      const s = windowAt(ws, t);
      expect(s.opensAt).toBeLessThan(s.closesAt);
      if (s.inside) {
        expect(s.opensAt).toBeLessThanOrEqual(t);
        expect(t).toBeLessThan(s.closesAt);
      } else {
        expect(s.opensAt).toBeGreaterThan(t);
        // Anywhere between now and the opening: still outside, and the same opening is next.
        const between = t + Math.floor(((s.opensAt - t) * f) / 1000) * 1000;
        if (between < s.opensAt) expect(windowAt(ws, between)).toEqual(s);
        expect(windowAt(ws, s.opensAt - 1000).inside).toBe(false);
      }
      // Windows that chain into one for more than a week are open for good: their close is only a horizon.
      const chained = s.closesAt - s.opensAt > 7 * 86_400_000;
      const atOpen = windowAt(ws, s.opensAt);
      expect(atOpen.inside).toBe(true);
      if (!chained) {
        expect(atOpen.closesAt).toBe(s.closesAt);
        expect(windowAt(ws, s.closesAt - 1000)).toMatchObject({ inside: true, closesAt: s.closesAt });
        expect(windowAt(ws, s.closesAt).inside).toBe(false);
      }
    }),
    { numRuns: 300 },
  );
});

test("a window opens at one of its starts, local time, on one of its days, or where a DST jump skips over the start", () => {
  fc.assert(
    fc.property(window(ZONES), instant, (w, t) => {
      const s = windowAt([w], t);
      const local = wallClock(s.opensAt, w.timeZone);
      const secOfDay = Math.floor((local % 86_400_000) / 1000);
      const day = WEEKDAYS[new Date(local).getUTCDay()];
      const start = parseTimeOfDay(w.start) as number;
      if (secOfDay === start) expect(w.days).toContain(day);
      else {
        // A jump: the local clock a second before read earlier than the start, now later.
        const before = Math.floor((wallClock(s.opensAt - 1000, w.timeZone) % 86_400_000) / 1000);
        expect(before).toBeLessThan(start);
        expect(secOfDay).toBeGreaterThan(start);
      }
    }),
    { numRuns: 300 },
  );
});

test('in zones without DST, inside a window is what the wall clock says', () => {
  const byClock = (w: MaintenanceWindow, t: number): boolean => {
    const local = wallClock(t, w.timeZone);
    const sec = Math.floor((local % 86_400_000) / 1000);
    const day = new Date(local).getUTCDay();
    const start = parseTimeOfDay(w.start) as number;
    const end = parseTimeOfDay(w.end) as number;
    const on = (d: number): boolean => w.days.includes(WEEKDAYS[(d + 7) % 7] as MaintenanceWindow['days'][number]);
    return start < end ? on(day) && sec >= start && sec < end : (on(day) && sec >= start) || (on(day - 1) && sec < end);
  };
  fc.assert(
    fc.property(fc.array(window(FIXED), { minLength: 1, maxLength: 3 }), instant, (ws, t) => {
      expect(windowAt(ws, t).inside).toBe(ws.some((w) => byClock(w, t)));
    }),
    { numRuns: 500 },
  );
});
