import test, { type ExecutionContext } from 'ava';
import type { Browser } from 'puppeteer-core';
import { findChromium, launchChromium } from './chromium.js';
import { startGallery, type GalleryFixture } from './gallery-fixture.js';
import { GalleryPage } from './gallery-page.js';

// The example gallery (examples/page.html) in a real browser: each example open in two tabs in
// front of the example origin and a sidecar (what `npm start` runs), lines typed into one tab and
// read in both, then the sidecar stopped to see the page say so, and started again. Screenshots
// go to test/output/browser/ (git-ignored). Without Chromium these tests are skipped, in one line
// (unless KG_BROWSER_TESTS=required, as in CI).

const chromium = findChromium();

if (chromium === undefined && process.env['KG_BROWSER_TESTS'] === 'required') {
  // .ci/run sets this: there, a failed Chromium install must not pass as skipped tests.
  test('browser tests: Chromium is required (KG_BROWSER_TESTS=required) but none was found', (t) => {
    t.fail('no chromium on PATH and no CHROMIUM_PATH: apt-get install chromium');
  });
} else if (chromium === undefined) {
  test.skip('browser tests: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)', () => {});
} else {
  let browser: Promise<Browser> | undefined;
  const theBrowser = () => (browser ??= launchChromium(chromium));
  test.after.always(async () => { if (browser) await (await browser).close(); });

  /**
   * Room for a browser on a busy machine: a test's own timeout, which also holds off ava's
   * global one (60 s of no results) while it runs. Each wait inside has its own deadline.
   */
  const allowBrowserTime = (t: ExecutionContext) => t.timeout(180_000, 'browser test over 180 s');

  /** A fresh origin and sidecar, and two tabs on `example`. */
  async function openTwo(t: ExecutionContext, example: string): Promise<[GalleryFixture, GalleryPage, GalleryPage]> {
    allowBrowserTime(t);
    const gallery = await startGallery();
    t.teardown(() => gallery.close());
    const b = await theBrowser();
    const pages = [await GalleryPage.open(b, gallery.url('/'), example), await GalleryPage.open(b, gallery.url('/'), example)] as const;
    t.teardown(async () => { for (const p of pages) await p.close(); });
    return [gallery, ...pages];
  }

  /** Publishes SSE content on a channel through the publish API, as the curl line npm start prints does. */
  async function publishStream(gallery: GalleryFixture, channel: string, contents: string[]): Promise<void> {
    const items = contents.map((content) => ({ channel, formats: { 'http-stream': { content } } }));
    const res = await fetch(gallery.publishUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ items }) });
    if (!res.ok) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  }

  async function inputValue(page: GalleryPage): Promise<string> {
    return page.page.$eval(`section#${page.example} input[name=text]`, (el: any) => el.value as string);
  }

  test.serial('SSE chat: a line typed in one tab shows in both; hand-made publishes show without "Invalid Date"; the list keeps 50; a failed send says why', async (t) => {
    const [gallery, a, b] = await openTwo(t, 'sse');
    for (const p of [a, b]) {
      await p.waitForStatus('live', /^live$/);
      await p.waitForLine('connected');
    }
    await a.send('hello from the first tab');
    for (const p of [a, b]) await p.waitForLine('hello from the first tab');
    await b.send('and hello back');
    for (const p of [a, b]) await p.waitForLine('and hello back');

    // The curl line npm start prints (no time in it), and data that is not JSON at all.
    await publishStream(gallery, 'demo', ['data: {"text":"hello from curl"}\n\n', 'data: plain words\n\n']);
    for (const p of [a, b]) {
      await p.waitForLine('plain words');
      t.true((await p.lines()).includes('hello from curl'));
      const shown = await p.fullLines();
      t.false(shown.some((l) => /Invalid Date/.test(l)), shown.join(' | '));
    }

    await publishStream(gallery, 'demo', Array.from({ length: 60 }, (_, i) => `data: {"text":"bulk ${i + 1}"}\n\n`));
    await a.waitForLine('bulk 60');
    const kept = await a.lines();
    t.is(kept.length, 50);
    t.is(kept[0], 'bulk 11');
    await a.screenshot('sse-chat-1');
    await b.screenshot('sse-chat-2');
    t.deepEqual([...a.failedResponses, ...b.failedResponses], [], 'no request failed (favicon included)');

    await gallery.stopSidecar();
    await a.waitForStatus('waiting', /reconnecting/);
    await a.send('into the void');
    await a.waitForError(/^Not sent: the server cannot be reached$/);
    t.is(await inputValue(a), 'into the void', 'the text stays for another try');
    await a.screenshot('sse-chat-send-failed');
  });

  test.serial('long-poll notes: notes typed in one tab show in both, a quick run of notes loses none, a poll that fails says so and recovers', async (t) => {
    const [gallery, a, b] = await openTwo(t, 'longpoll');
    for (const p of [a, b]) await p.waitForStatus('live', /waiting for notes/);
    await a.send('first note');
    for (const p of [a, b]) await p.waitForLine('first note');
    await b.send('second note');
    for (const p of [a, b]) await p.waitForLine('second note');

    // A backend adding notes one after another, faster than the tabs poll again.
    const quick = Array.from({ length: 8 }, (_, i) => `quick ${i + 1}`);
    for (const text of quick) t.is((await fetch(gallery.originUrl('/poll/notes'), { method: 'POST', body: text })).status, 201);
    for (const p of [a, b]) {
      await p.waitForLine('quick 8');
      t.deepEqual(await p.lines(), ['first note', 'second note', ...quick]);
    }
    await a.screenshot('long-poll-1');
    await b.screenshot('long-poll-2');
    t.deepEqual([...a.failedResponses, ...b.failedResponses], []);

    await gallery.stopSidecar();
    await a.waitForStatus('error', /^poll failed \(server unreachable\); retrying in \d+ s$/);
    await a.send('while down');
    await a.waitForError(/^Not sent: the server cannot be reached$/);
    await a.screenshot('long-poll-failed');
    await gallery.startSidecar();
    for (const p of [a, b]) await p.waitForStatus('live', /waiting for notes/);
    await b.send('back again');
    for (const p of [a, b]) await p.waitForLine('back again');
  });

  test.serial('WebSocket chat: a line typed in one tab shows in both; a closed socket says so, refuses to send, and reconnects', async (t) => {
    const [gallery, a, b] = await openTwo(t, 'ws');
    for (const p of [a, b]) {
      await p.waitForStatus('live', /^connected$/);
      await p.waitForLine('welcome to #chat');
    }
    await a.send('hi over a websocket');
    for (const p of [a, b]) await p.waitForLine('hi over a websocket');
    await b.send('hi back');
    for (const p of [a, b]) await p.waitForLine('hi back');
    await a.screenshot('ws-chat-1');
    await b.screenshot('ws-chat-2');
    t.deepEqual([...a.failedResponses, ...b.failedResponses], []);

    await gallery.stopSidecar();
    await a.waitForStatus('error', /^closed.*; reconnecting in 2 s$/);
    await a.send('nobody hears this');
    await a.waitForError(/^Not sent: not connected$/);
    await a.screenshot('ws-chat-closed');
    await gallery.startSidecar();
    for (const p of [a, b]) await p.waitForStatus('live', /^connected$/);
    await b.send('after the restart');
    for (const p of [a, b]) await p.waitForLine('after the restart');
    t.is((await a.lines()).filter((l) => l === 'hi back').length, 1);
  });

  test.serial('reliable feed: after a sidecar restart both tabs resume from their last id, with what was posted meanwhile, once, in order', async (t) => {
    const [gallery, a, b] = await openTwo(t, 'feed');
    for (const p of [a, b]) await p.waitForStatus('live', /^live$/);
    await a.send('before the restart');
    for (const p of [a, b]) await p.waitForLine('before the restart');
    t.deepEqual([...a.failedResponses, ...b.failedResponses], []);

    await gallery.stopSidecar();
    for (const p of [a, b]) await p.waitForStatus('waiting', /reconnecting \(will resume after #1\)|resuming after #1/);
    // A backend posts straight to the origin meanwhile: stored, not delivered live.
    const meanwhile = await fetch(gallery.originUrl('/events/feed'), { method: 'POST', body: 'while the sidecar was away' });
    t.is(meanwhile.status, 201);
    t.like(await meanwhile.json(), { published: false });
    await a.send('typed while it was down');
    await a.waitForError(/^Not sent: the server cannot be reached$/);
    await a.screenshot('feed-sidecar-down');

    await gallery.startSidecar();
    for (const p of [a, b]) {
      await p.waitForLine('while the sidecar was away');
      await p.waitForStatus('live', /^live$/);
    }
    await b.send('after the restart');
    const expected = ['before the restart', 'while the sidecar was away', 'after the restart'];
    for (const p of [a, b]) {
      await p.waitForLine('after the restart');
      t.deepEqual(await p.lines(), expected);
      t.deepEqual((await p.fullLines()).map((l) => /#(\d+)/.exec(l)?.[1]), ['1', '2', '3'], 'ids in order, none twice');
    }
    await a.screenshot('feed-1');
    await b.screenshot('feed-2');
  });

  test.serial('switching tabs closes the example left: only the open one holds a connection', async (t) => {
    allowBrowserTime(t);
    const gallery = await startGallery();
    t.teardown(() => gallery.close());
    const page = await GalleryPage.open(await theBrowser(), gallery.url('/'), 'sse');
    t.teardown(() => page.close());
    await page.waitForStatus('live', /^live$/);
    await gallery.waitForSubscribers('demo', 1);
    await page.openTab('feed');
    await page.waitForStatus('live', /^live$/);
    await gallery.waitForSubscribers('feed', 1);
    await gallery.waitForSubscribers('demo', 0);
    await page.openTab('ws');
    await page.waitForStatus('live', /^connected$/);
    await gallery.waitForSubscribers('chat', 1);
    await gallery.waitForSubscribers('feed', 0);
    await page.openTab('longpoll');
    await page.waitForStatus('live', /waiting for notes/);
    await gallery.waitForSubscribers('notes', 1);
    await gallery.waitForSubscribers('chat', 0);
    t.is(await page.page.$eval('nav a[aria-current="page"]', (el: any) => el.textContent as string), 'Long-poll notes');
    t.deepEqual(page.failedResponses, []);
  });
}
