import fc from 'fast-check';
import { errorLines } from '../../src/hosts/errors';

test("when nix fails, then the operator gets its last lines, the error last, a repeated warning once", () => {
  const stderr = [
    "warning: the group 'nixbld' specified in 'build-users-group' does not exist",
    "warning: the group 'nixbld' specified in 'build-users-group' does not exist",
    "error: the group 'nixbld' specified in 'build-users-group' does not exist",
    '',
  ].join('\n');
  expect(errorLines(stderr)).toBe("warning: the group 'nixbld' specified in 'build-users-group' does not exist | error: the group 'nixbld' specified in 'build-users-group' does not exist");
});

test('when the output has colours, carriage returns or control characters, then none reach the text', () => {
  expect(errorLines('\x1b[31;1merror:\x1b[0m builder failed\r\n\x07bell\x00')).toBe('error: builder failed | bell');
});

test('property: at most maxChars characters, no newline or control character, and the last line is kept', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 300 }), { maxLength: 30 }), fc.integer({ min: 10, max: 600 }), (lines, max) => {
      const text = errorLines(lines.join('\n'), 4, max);
      expect(text.length).toBeLessThanOrEqual(max);
      // eslint-disable-next-line no-control-regex
      expect(text).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f]/);
      const last = lines.map((l) => l.trim()).filter(Boolean).pop();
      // eslint-disable-next-line no-control-regex
      if (last && !/[\x00-\x1f\x7f]/.test(last) && last.length < max - 1) expect(text.endsWith(last)).toBe(true);
    }),
  );
});
