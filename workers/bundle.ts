/**
 * The workflow bundle as the worker loads it. The SDK's bundler inlines a source map that carries every
 * source file's full text (`sourcesContent`, about a third of the bundle); the worker parses that map
 * in its workflow thread (a SourceMapConsumer, for stack traces) and keeps the text in each V8 context.
 * Stack traces need only the mappings; the text is shown only with `showStackTraceSources`, which the
 * deployer leaves off. So the text is dropped: a smaller worker (bench/idle-rss.ts, BENCHMARKS.md),
 * the same stack traces.
 */
const MARK = '//# sourceMappingURL=data:application/json;';

/** The bundle with its inline source map's `sourcesContent` removed; any other code comes back unchanged. */
export function slimWorkflowBundle(code: string): string {
  const at = code.lastIndexOf(MARK);
  if (at < 0) return code;
  const b64 = code.indexOf('base64,', at);
  if (b64 < 0) return code;
  let map: Record<string, unknown>;
  try {
    map = JSON.parse(Buffer.from(code.slice(b64 + 'base64,'.length).trimEnd(), 'base64').toString('utf8')) as Record<string, unknown>;
  } catch {
    return code;
  }
  if (!('sourcesContent' in map)) return code;
  delete map.sourcesContent;
  return `${code.slice(0, at)}${MARK}charset=utf-8;base64,${Buffer.from(JSON.stringify(map)).toString('base64')}\n`;
}
