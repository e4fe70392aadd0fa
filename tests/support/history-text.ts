/**
 * A history as text a search can trust: every payload's `data` decoded from base64 (as
 * `historyToJSON` leaves it) and every byte array as UTF-8, so a check that a secret is absent
 * looks at what the payloads say, not at their encoding.
 */
export function historyText(history: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown, key?: string): void => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') parts.push(key === 'data' ? Buffer.from(v, 'base64').toString('utf8') : v);
    else if (Array.isArray(v)) for (const x of v) walk(x);
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(history);
  return parts.join('\n');
}
