/**
 * A real Chromium (Debian's, /usr/bin/chromium, which .ci/run installs) driven by playwright-core,
 * against a real collector with API tokens. One browser per test file; screenshots go to
 * test-results/console/ (ignored by git) for people to look at, never compared.
 */
import type { ExecutionContext } from 'ava';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { type CollectorHandle } from '../../collector/main.js';
import * as testCollector from './collector.js';

/** Debian's chromium. */
const CHROMIUM = '/usr/bin/chromium';

/** Where screenshots are saved. */
export const SCREENSHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test-results/console');

/** Tokens of the test collector, one per role. */
export const TOKENS = {
  viewer: { name: 'vera', token: 'viewer-token-0123456789abcdef' },
  responder: { name: 'rob', token: 'responder-token-0123456789abcdef' },
  reviewer: { name: 'rita', token: 'reviewer+token/0123456789abcdef==' },
  admin: { name: 'adam', token: 'admin-token-0123456789abcdef' },
} as const;

/** Launch the browser (headless, no sandbox: CI runs as root). */
export function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does it as root)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** A real in-process collector: plaintext gRPC for the test's deviations, API with TOKENS. */
export async function startTestCollector(): Promise<{ collector: CollectorHandle; dir: string; stop(): Promise<void> }> {
  const tokens = `tokens:\n${Object.entries(TOKENS).map(([role, t]) => `  - name: ${t.name}\n    role: ${role}\n    token: "${t.token}"\n`).join('')}`;
  const collector = await testCollector.startTestCollector({ apiRateLimit: 1000 }, { tokens });
  return { collector, dir: collector.dir, stop: () => collector.close() };
}

/** A fresh page (its own context: its own sessionStorage) that fails the test on a CSP violation or a page error. */
export async function openPage(t: ExecutionContext, browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  t.teardown(async () => {
    await context.close();
  });
  (page as Page & { problems?: string[] }).problems = problems;
  return page;
}

/** Errors the page reported so far (page errors, CSP refusals). */
export function problemsOf(page: Page): string[] {
  return (page as Page & { problems?: string[] }).problems ?? [];
}

/** Sign in through the form. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** Save a screenshot of the whole page as test-results/console/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
