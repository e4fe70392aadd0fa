import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Asset {
  type: string;
  body: Buffer;
}

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** The dashboard: plain HTML, CSS and JavaScript served as they are (no build step), read once. */
export function dashboardAssets(dir = join(__dirname, 'public')): Map<string, Asset> {
  return new Map(Object.entries(FILES).map(([name, type]) => [name, { type, body: readFileSync(join(dir, name)) }]));
}
