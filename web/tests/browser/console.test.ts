// The console in a real browser (Debian's Chromium through playwright-core) against the
// real service on a fresh database: the demo client and reader in two browser contexts,
// the admin in a third. Each step saves a screenshot under web/test-results/.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEMO, Service, WEB } from '../../../clients/js/tests/service';
import { CHROMIUM, CHROMIUM_ARGS, launchChromium } from './chromium';

const SHOTS = join(WEB, 'test-results');
const AXE = readFileSync(join(WEB, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

let svc: Service;
let browser: Browser;
let clientCtx: BrowserContext;
let readerCtx: BrowserContext;
let client: Page;
let reader: Page;
const cspViolations: string[] = [];

function link(user: string, role: string, name: string): string {
  // What scripts/dev prints for each demo user.
  return `${svc.url}/#access_token=${svc.token(user, role, name)}`;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

async function open(ctx: BrowserContext, url: string): Promise<Page> {
  const page = await ctx.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  await page.goto(url);
  return page;
}

/** serious or critical axe-core violations on the page as it is now. */
async function axeViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE); // DevTools evaluation: not an inline script, so CSP allows it
  const found = await page.evaluate(async () => {
    const w = window as unknown as { axe: { run: (c: Document, o: object) => Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } };
    const r = await w.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, where: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}) at ${v.where.join(', ')}`);
}

function sessionItem(page: Page) {
  return page.getByRole('list', { name: 'Sessions' }).getByRole('listitem').filter({ hasText: 'Demo consultation' });
}

function thread(page: Page) {
  return page.getByRole('list', { name: 'Messages' });
}

async function unread(page: Page): Promise<number> {
  const badge = sessionItem(page).locator('.unread');
  return (await badge.count()) ? Number(await badge.innerText()) : 0;
}

function wav(seconds: number, rate = 8000): Buffer {
  const data = Buffer.alloc(seconds * rate * 2);
  for (let i = 0; i < seconds * rate; i++) data.writeInt16LE(Math.round(3000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/** A width x height RGB PNG with a colour gradient, encoded here (zlib + CRC-32). */
function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      raw[row + 1 + x * 3] = Math.round((255 * x) / width);
      raw[row + 2 + x * 3] = Math.round((255 * y) / height);
      raw[row + 3 + x * 3] = 180;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const PNG = png(160, 100);

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  svc = await Service.start({ template: inject('template'), env: { CONSOLE_DIR: join(WEB, 'dist') } });
  // An older message for search to find (a day ago, far above the newest page).
  svc.sql(
    `insert into public.chat_messages (session_id, sender_id, content, created_at)
     select '${DEMO.session}', '${DEMO.reader}', 'filler message ' || g, now() - interval '1 day' + g * interval '1 second'
     from generate_series(1, 80) g;
     insert into public.chat_messages (session_id, sender_id, content, created_at)
     values ('${DEMO.session}', '${DEMO.reader}', 'The tarot spread from our first meeting', now() - interval '2 days');`,
  );
  browser = await launchChromium(chromium);
  clientCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  readerCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

describe('the console', () => {
  it('serves / with a strict Content-Security-Policy and long-cached hashed assets', async () => {
    const res = await fetch(`${svc.url}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(await res.text())![1];
    const a = await fetch(`${svc.url}${asset}`);
    expect(a.status).toBe(200);
    expect(a.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${svc.url}/assets/..%2f..%2fpyproject.toml`)).status).toBe(404);
  });

  it('signs in with a pasted token, with no serious accessibility violation', async () => {
    const ctx = await browser.newContext();
    const page = await open(ctx, `${svc.url}/`);
    await page.getByRole('textbox', { name: 'Access token' }).fill('not a token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').innerText()).toContain('not an access token');
    expect(await axeViolations(page)).toEqual([]);
    await shot(page, '01-sign-in');
    await page.getByRole('textbox', { name: 'Access token' }).fill(svc.token(DEMO.client, 'client', 'Demo Client'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => sessionItem(page).count()).toBe(1);
    // Nothing was stored beyond the tab: a new tab asks again.
    const again = await open(ctx, `${svc.url}/`);
    await expect.poll(() => again.getByRole('textbox', { name: 'Access token' }).count()).toBe(1);
    await ctx.close();
  });

  it('client and reader sign in from their links; the reader sees a message live with its unread count', async () => {
    client = await open(clientCtx, link(DEMO.client, 'client', 'Demo Client'));
    reader = await open(readerCtx, link(DEMO.reader, 'reader', 'Demo Reader'));
    expect(client.url()).not.toContain('access_token'); // the fragment is removed
    await sessionItem(client).getByRole('button').click();
    await expect.poll(() => thread(client).getByRole('listitem').count()).toBeGreaterThan(0);
    await expect.poll(() => sessionItem(reader).count()).toBe(1);
    // Presence: the reader's console follows the session, so the client sees them online.
    await expect.poll(() => client.getByLabel('Online', { exact: true }).innerText()).toContain('Demo Reader');
    await expect
      .poll(() => sessionItem(reader).locator(`.dot[data-user="${DEMO.client}"]`).getAttribute('class'))
      .toContain('online');
    const before = await unread(reader);

    await client.getByRole('textbox', { name: 'Message' }).fill('Hello, can you see this?');
    await client.getByRole('button', { name: 'Send' }).click();
    const mine = thread(client).getByRole('listitem').filter({ hasText: 'Hello, can you see this?' });
    // Delivered: the reader's console is connected and acknowledged it.
    await expect.poll(() => mine.locator('.state').innerText(), { timeout: 10_000 }).toBe('Delivered');
    await expect.poll(() => unread(reader)).toBe(before + 1);
    await expect.poll(() => sessionItem(reader).locator('.last').innerText()).toContain('Hello, can you see this?');
    await shot(client, '02-client-sent-delivered');
    await shot(reader, '03-reader-unread');
    expect(await axeViolations(client)).toEqual([]);
    expect(await axeViolations(reader)).toEqual([]);

    // The reader opens it: read; the sender sees "Read".
    await sessionItem(reader).getByRole('button').click();
    await expect.poll(() => thread(reader).getByRole('listitem').filter({ hasText: 'Hello, can you see this?' }).count()).toBe(1);
    await expect.poll(() => unread(reader)).toBe(0);
    await expect.poll(() => mine.locator('.state').innerText(), { timeout: 10_000 }).toBe('Read');
    await shot(client, '04-client-read');
  });

  it('shows typing on the other side and clears it', async () => {
    const status = reader.getByRole('status', { name: 'Typing' });
    await client.getByRole('textbox', { name: 'Message' }).pressSequentially('I am writ', { delay: 40 });
    await expect.poll(() => status.innerText()).toContain('Demo Client is typing');
    await shot(reader, '05-reader-typing');
    await client.getByRole('textbox', { name: 'Message' }).fill('');
    await expect.poll(() => status.innerText(), { timeout: 10_000 }).toBe('');
  });

  it('previews an image dropped on the thread on both sides', async () => {
    await client.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'pixels.png', { type: 'image/png' }));
      const target = document.querySelector('.thread')!;
      target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, PNG.toString('base64'));
    for (const page of [client, reader]) {
      const img = thread(page).getByRole('img', { name: 'pixels.png' });
      await expect.poll(() => img.count(), { timeout: 10_000 }).toBe(1);
      await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(160);
    }
    await shot(reader, '06-image-both-sides');
  });

  it('plays a WAV voice note with its duration', async () => {
    await client.getByLabel('Attach file').setInputFiles({ name: 'voice-note.wav', mimeType: 'audio/wav', buffer: wav(2) });
    const item = thread(reader).getByRole('listitem').filter({ has: reader.locator('audio') }).last();
    await expect.poll(() => item.count(), { timeout: 10_000 }).toBe(1);
    expect(await item.getByLabel('Duration').innerText()).toBe('0:02');
    const audio = item.locator('audio');
    await expect.poll(() => audio.evaluate((a: HTMLAudioElement) => a.readyState >= 1 && Math.round(a.duration))).toBe(2);
    await audio.evaluate(async (a: HTMLAudioElement) => {
      a.muted = true;
      a.currentTime = 0.5; // seeking
      await a.play();
    });
    await expect.poll(() => audio.evaluate((a: HTMLAudioElement) => a.currentTime)).toBeGreaterThan(0.6);
    await shot(reader, '07-voice-note');
  });

  it('replies quote their parent and jump to it; files download through their signed URL', async () => {
    const parent = thread(reader).getByRole('listitem').filter({ hasText: 'Hello, can you see this?' });
    await parent.getByRole('button', { name: 'Reply to Demo Client' }).click();
    await reader.getByRole('textbox', { name: 'Message' }).fill('Yes, loud and clear');
    await reader.getByRole('button', { name: 'Send' }).click();
    const reply = thread(client).getByRole('listitem').filter({ hasText: 'Yes, loud and clear' });
    await expect.poll(() => reply.count(), { timeout: 10_000 }).toBe(1);
    const quote = reply.getByRole('button', { name: 'Go to the message this replies to' });
    expect(await quote.innerText()).toContain('Hello, can you see this?');
    await quote.click();
    const target = thread(client).getByRole('listitem').filter({ hasText: 'Hello, can you see this?' }).first();
    await expect.poll(() => target.evaluate((el) => el.contains(document.activeElement))).toBe(true);

    await client.getByLabel('Attach file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('my notes\n') });
    const file = thread(reader).getByRole('link', { name: 'notes.txt' });
    await expect.poll(() => file.count(), { timeout: 10_000 }).toBe(1);
    const href = (await file.getAttribute('href'))!;
    expect(href).toContain('signature=');
    expect(await reader.evaluate(async (url) => (await fetch(url)).text(), href)).toBe('my notes\n');
    await shot(client, '08-reply-and-file');
  });

  it('explains a refused upload in words', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(120)]);
    await client.getByLabel('Attach file').setInputFiles({ name: 'tool.bin', mimeType: 'application/octet-stream', buffer: elf });
    const alert = client.getByRole('alert').filter({ hasText: 'This type of file is not accepted' });
    await expect.poll(() => alert.count(), { timeout: 10_000 }).toBe(1);
    await shot(client, '09-refused-file');
    await client.getByRole('button', { name: 'Dismiss' }).click();
    await expect.poll(() => alert.count()).toBe(0);
  });

  it('finds an older message by search and jumps to it', async () => {
    await client.getByRole('searchbox', { name: 'Search' }).fill('tarot');
    const results = client.getByRole('list', { name: 'Search results' });
    await expect.poll(() => results.getByRole('listitem').count(), { timeout: 10_000 }).toBe(1);
    expect(await results.locator('mark').innerText()).toBe('tarot');
    await results.getByRole('button').click();
    const target = thread(client).getByRole('listitem').filter({ hasText: 'The tarot spread from our first meeting' });
    await expect.poll(() => target.count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => target.evaluate((el) => el.contains(document.activeElement))).toBe(true);
    await shot(client, '10-search-jump');
    await client.getByRole('searchbox', { name: 'Search' }).fill('');
  });

  it('loses nothing and duplicates nothing across a network cut', async () => {
    // Back to the newest messages in the client's thread.
    await client.getByTestId('thread-scroller').evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await readerCtx.setOffline(true);
    await expect.poll(() => reader.getByRole('status', { name: 'Connection' }).innerText()).toContain('Reconnecting');
    for (const n of [1, 2, 3]) {
      await client.getByRole('textbox', { name: 'Message' }).fill(`while you were away ${n}`);
      await client.getByRole('button', { name: 'Send' }).click();
    }
    await reader.getByRole('textbox', { name: 'Message' }).fill('sent while offline');
    await reader.getByRole('button', { name: 'Send' }).click();
    const pending = thread(reader).getByRole('listitem').filter({ hasText: 'sent while offline' });
    await expect.poll(() => pending.locator('.state').innerText()).toBe('Sending…');
    await shot(reader, '11-offline');
    await new Promise((r) => setTimeout(r, 3000));
    await readerCtx.setOffline(false);
    await expect.poll(() => reader.getByRole('status', { name: 'Connection' }).innerText(), { timeout: 15_000 }).toBe('Connected');
    for (const n of [1, 2, 3]) {
      await expect
        .poll(() => thread(reader).getByRole('listitem').filter({ hasText: `while you were away ${n}` }).count(), { timeout: 15_000 })
        .toBe(1);
    }
    await expect.poll(() => pending.locator('.state').innerText(), { timeout: 15_000 }).not.toBe('Sending…');
    await expect.poll(() => thread(client).getByRole('listitem').filter({ hasText: 'sent while offline' }).count()).toBe(1);
    const stored = svc.sql(
      `select count(*) filter (where content like 'while you were away %'), count(*) filter (where content = 'sent while offline') from public.chat_messages`,
    );
    expect(stored.trim()).toBe('3|1');
    const ids = await thread(reader).getByRole('listitem').evaluateAll((els) => els.map((e) => e.getAttribute('data-message-id')));
    expect(new Set(ids).size).toBe(ids.length);
    await shot(reader, '12-back-online');
  });

  it('shows the admin live statistics that move, and the audit log', async () => {
    const adminCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const admin = await open(adminCtx, link(DEMO.admin, 'admin', 'Demo Admin'));
    await admin.getByRole('button', { name: 'Admin' }).click();
    const stat = admin.locator('[data-stat="Messages, last minute"]');
    await expect.poll(() => stat.innerText(), { timeout: 10_000 }).toMatch(/^\d+$/);
    const before = Number(await stat.innerText());
    for (const n of [1, 2]) {
      await client.getByRole('textbox', { name: 'Message' }).fill(`for the statistics ${n}`);
      await client.getByRole('button', { name: 'Send' }).click();
    }
    await expect.poll(async () => Number(await stat.innerText()), { timeout: 15_000 }).toBeGreaterThanOrEqual(before + 2);
    await expect.poll(() => admin.getByRole('table', { name: 'Audit log' }).getByRole('row').count()).toBeGreaterThan(1);
    await admin.getByLabel('Action').fill('message.created');
    await admin.getByRole('button', { name: 'Apply filters' }).click();
    await expect
      .poll(async () => (await admin.getByRole('table', { name: 'Audit log' }).locator('tbody td:nth-child(2)').allInnerTexts()).every((t) => t === 'message.created'))
      .toBe(true);
    expect(await axeViolations(admin)).toEqual([]);
    await shot(admin, '13-admin');
    // A client is not offered the admin view.
    expect(await client.getByRole('button', { name: 'Admin' }).count()).toBe(0);
    await adminCtx.close();
  });

  it('a sender deletes a message and the other side sees the tombstone live', async () => {
    await client.getByRole('textbox', { name: 'Message' }).fill('I should not have said that');
    await client.getByRole('button', { name: 'Send' }).click();
    const theirs = thread(reader).getByRole('listitem').filter({ hasText: 'I should not have said that' });
    await expect.poll(() => theirs.count(), { timeout: 10_000 }).toBe(1);
    const mine = thread(client).getByRole('listitem').filter({ hasText: 'I should not have said that' });
    await expect.poll(() => mine.getByRole('button', { name: 'Edit' }).count()).toBe(1);
    expect(await theirs.getByRole('button', { name: 'Delete' }).count()).toBe(0); // not theirs to delete
    await mine.getByRole('button', { name: 'Delete' }).click();
    await expect
      .poll(() => thread(reader).getByText('This message was deleted.').count(), { timeout: 10_000 })
      .toBeGreaterThan(0);
    expect(await thread(reader).getByText('I should not have said that').count()).toBe(0);
    await shot(reader, '14-reader-tombstone');
  });

  it('a participant reports a message and an admin resolves the report by removing it', async () => {
    await client.getByRole('textbox', { name: 'Message' }).fill('Pay me directly and skip the fees');
    await client.getByRole('button', { name: 'Send' }).click();
    const theirs = thread(reader).getByRole('listitem').filter({ hasText: 'Pay me directly and skip the fees' });
    await expect.poll(() => theirs.count(), { timeout: 10_000 }).toBe(1);
    await theirs.getByRole('button', { name: /^Report/ }).click();
    await reader.getByLabel('Reason').selectOption('off_platform_contact');
    await reader.getByRole('button', { name: 'Send report' }).click();
    await expect.poll(() => reader.getByRole('status', { name: 'Moderation' }).innerText()).toContain('report was sent');

    const adminCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const admin = await open(adminCtx, link(DEMO.admin, 'admin', 'Demo Admin'));
    await admin.getByRole('button', { name: 'Admin' }).click();
    await expect(admin.getByRole('heading', { name: 'Reports' })).toBeTruthy();
    const report = admin.getByRole('list', { name: 'Open reports' }).getByRole('listitem').filter({ hasText: 'Pay me directly' });
    await expect.poll(() => report.count(), { timeout: 10_000 }).toBe(1);
    await report.getByLabel('Action').selectOption('redact');
    await report.getByRole('button', { name: 'Resolve' }).click();
    await expect.poll(() => admin.getByRole('status', { name: 'Moderation result' }).innerText()).toBe('Report resolved.');
    expect(await axeViolations(admin)).toEqual([]);
    await shot(admin, '15-admin-reports');
    for (const page of [client, reader]) {
      await expect
        .poll(() => thread(page).getByText('This message was removed by a moderator.').count(), { timeout: 10_000 })
        .toBeGreaterThan(0);
    }
    expect(await thread(reader).getByText('Pay me directly and skip the fees').count()).toBe(0);
    await adminCtx.close();
  });

  it('records a voice note with MediaRecorder and sends it as audio', async () => {
    // A browser of its own: Chromium's fake microphone (a tone) needs two more flags.
    const mic = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
    });
    try {
      const ctx = await mic.newContext({ permissions: ['microphone'] });
      const page = await open(ctx, link(DEMO.client, 'client', 'Demo Client'));
      await sessionItem(page).getByRole('button').click();
      const before = await svc.sql(`select count(*) from public.chat_messages where type = 'audio'`).trim();
      await page.getByRole('button', { name: 'Record voice note' }).click();
      await expect.poll(() => page.getByRole('button', { name: 'Stop recording' }).count()).toBe(1);
      await new Promise((r) => setTimeout(r, 1500));
      await page.getByRole('button', { name: 'Stop recording' }).click();
      await expect
        .poll(() => svc.sql(`select count(*) from public.chat_messages where type = 'audio'`).trim(), { timeout: 15_000 })
        .toBe(String(Number(before) + 1));
      const stored = svc.sql(
        `select metadata->>'mime_type' from public.chat_messages where type = 'audio' order by seq desc limit 1`,
      );
      expect(stored.trim()).toBe('audio/webm');
      const note = thread(reader).getByRole('listitem').filter({ hasText: /Demo Client/ }).filter({ has: reader.locator('audio') }).last();
      await expect.poll(() => note.locator('audio').getAttribute('src'), { timeout: 10_000 }).toContain('voice-note-');
      await ctx.close();
    } finally {
      await mic.close();
    }
  });

  it('broke no Content-Security-Policy rule on the way', () => {
    expect(cspViolations).toEqual([]);
  });
});
