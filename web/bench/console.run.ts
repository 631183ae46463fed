// scripts/bench console: the console's bundle size (gzip) and the time to open a session
// of 5,000 messages in headless Chromium, against the real service on a fresh database.
// A measurement that prints figures, not a timed test: it asserts only that it worked.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { expect, inject, it } from 'vitest';
import { launchChromium } from '../tests/browser/chromium';
import { DEMO, Service, WEB } from '../../clients/js/tests/service';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

it(`opens a session of ${MESSAGES} messages`, async () => {
  const assets = join(WEB, 'dist', 'assets');
  const sizes = readdirSync(assets).map((f) => {
    const body = readFileSync(join(assets, f));
    return { file: f, bytes: statSync(join(assets, f)).size, gzip: gzipSync(body, { level: 9 }).length };
  });
  const total = sizes.reduce((a, s) => ({ bytes: a.bytes + s.bytes, gzip: a.gzip + s.gzip }), { bytes: 0, gzip: 0 });

  const svc = await Service.start({ template: inject('template'), env: { CONSOLE_DIR: join(WEB, 'dist') } });
  const browser = await launchChromium(chromium);
  try {
    svc.sql(
      `insert into public.chat_messages (session_id, sender_id, content, created_at)
       select '${DEMO.session}', case when g % 2 = 0 then '${DEMO.client}'::uuid else '${DEMO.reader}'::uuid end,
              'Message number ' || g || ' of the long consultation, with a little text to wrap.',
              now() - interval '1 day' + g * interval '1 second'
       from generate_series(1, ${MESSAGES}) g`,
    );
    const link = `${svc.url}/#access_token=${svc.token(DEMO.reader, 'reader', 'Demo Reader')}`;
    const cold: number[] = [];
    const click: number[] = [];
    const listed: number[] = [];
    let rendered = 0;
    let back = 0;
    for (let run = 0; run < RUNS; run++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await ctx.newPage();
      await page.goto(link);
      // Timed inside the page (performance.now(), from the navigation's start), polling
      // every animation frame: no test-driver latency in the figures.
      const listShown = await page.evaluate(async () => {
        const found = () =>
          [...document.querySelectorAll('ul[aria-label="Sessions"] button')].find((b) =>
            b.textContent?.includes('Demo consultation'),
          );
        while (!found()) await new Promise((r) => requestAnimationFrame(r));
        return performance.now();
      });
      const opened = await page.evaluate(async () => {
        const button = [...document.querySelectorAll<HTMLButtonElement>('ul[aria-label="Sessions"] button')].find((b) =>
          b.textContent?.includes('Demo consultation'),
        )!;
        const t = performance.now();
        button.click();
        const shown = () => document.querySelector('[role="list"][aria-label="Messages"]')?.textContent?.includes('Welcome! I am here');
        while (!shown()) await new Promise((r) => requestAnimationFrame(r));
        return { click: performance.now() - t, total: performance.now() };
      });
      cold.push(opened.total);
      click.push(opened.click);
      listed.push(listShown);
      rendered = await page.getByRole('list', { name: 'Messages' }).getByRole('listitem').count();
      if (run === 0) {
        // Scrolling back through the whole session by keyset pages (50 at a time).
        const t3 = Date.now();
        await page.getByTestId('thread-scroller').evaluate(async (el) => {
          for (let i = 0; i < 400 && !el.textContent?.includes('Message number 1 of'); i++) {
            el.scrollTop = 0;
            el.dispatchEvent(new Event('scroll'));
            await new Promise((r) => setTimeout(r, 30));
          }
        });
        back = Date.now() - t3;
        expect(await page.getByRole('list', { name: 'Messages' }).getByRole('listitem').count()).toBeLessThan(60);
      }
      await ctx.close();
    }
    const figures = {
      messages: MESSAGES + 2,
      bundle: { files: sizes, total_bytes: total.bytes, total_gzip_bytes: total.gzip },
      open_ms: {
        navigation_to_list_median: Math.round(median(listed)),
        navigation_to_newest_message_median: Math.round(median(cold)),
        click_to_newest_message_median: Math.round(median(click)),
        runs: RUNS,
      },
      rendered_message_items: rendered,
      scroll_back_through_all_ms: back,
      chromium: browser.version(),
    };
    console.log(`\nCONSOLE BENCH ${JSON.stringify(figures, null, 2)}\n`);
    expect(rendered).toBeGreaterThan(0);
  } finally {
    await browser.close();
    await svc.stop();
  }
}, 600_000);
