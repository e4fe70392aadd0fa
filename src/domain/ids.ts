/**
 * Workflow ids built from names (pure; bundled into workflow code). Each part is escaped so that the
 * separator "." never appears inside one, which makes the encoding injective: two different lists of
 * parts never give the same id (`a-b`/`c` and `a`/`b-c`, or `release/1` and `release_1`, stay apart).
 * Letters, digits and "-" are kept as written, so the usual names read as they are.
 */

/**
 * One part of an id: letters, digits and "-" as they are; every other UTF-16 code unit as `_` and two
 * hex digits (`.` → `_2e`, `/` → `_2f`, `_` → `_5f`), or `_u` and four (above 0xff). `u` is no hex
 * digit, so each escape reads one way only.
 */
export function idPart(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i] as string;
    if (/[A-Za-z0-9-]/.test(ch)) out += ch;
    else out += c <= 0xff ? `_${c.toString(16).padStart(2, '0')}` : `_u${c.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** `prefix` then the escaped parts joined by ".": `deploy-acme.nixos-fleet.pr42`. */
export function encodeId(prefix: string, parts: string[]): string {
  return `${prefix}${parts.map(idPart).join('.')}`;
}
