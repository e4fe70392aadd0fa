/**
 * The dashboard tests' browser: Debian's chromium driven by playwright-core, a page that collects
 * its own errors (a test fails on any), and the sign-in every test starts with.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = process.env.NIXFLEET_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (scripts/install-browser-deps.sh installs Debian's chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}

/** A fresh context and page; `errors` gathers the page's uncaught errors, console errors and the requests a server error answered. */
export async function openPage(browser: Browser): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 980 } });
  const errors: string[] = [];
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => (m.type() === 'error' ? errors.push(m.text()) : undefined));
  // Chromium's console line for a failed load does not say which: name the request of a server error.
  page.on('response', (r) => (r.status() >= 500 ? errors.push(`${r.status()} from ${r.request().method()} ${new URL(r.url()).pathname}`) : undefined));
  return { context, page, errors };
}

/** Signs in with an API token on the dashboard at `base` and waits for the identity to show. */
export async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#identity').waitFor();
}
