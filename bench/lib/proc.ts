import { readFileSync } from 'node:fs';

/** Peak and current resident set of a live process, in MiB (VmHWM / VmRSS from /proc). */
export function rssOf(pid: number): { peakMiB: number; rssMiB: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { peakMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
}
