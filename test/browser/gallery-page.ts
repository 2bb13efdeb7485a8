import { mkdirSync } from 'node:fs';
import type { Browser, HTTPResponse, Page } from 'puppeteer-core';

// One open example of the gallery (examples/page.html) in a browser tab, driven as a person would:
// typing into the form and pressing Enter, reading what the page shows.

// The functions passed to waitForFunction/$$eval run in the page, where these exist.
declare const document: any;

/** Where screenshots go (git-ignored). */
export const SCREENSHOT_DIR = new URL('../output/browser/', import.meta.url);

const WAIT_MS = 20_000;

export class GalleryPage {
  /** Responses of 400 and above, as "STATUS URL": a page that works asks for nothing it cannot get. */
  readonly failedResponses: string[] = [];

  private constructor(readonly page: Page, public example: string) {
    page.on('response', (res: HTTPResponse) => {
      if (res.status() >= 400) this.failedResponses.push(`${res.status()} ${res.url()}`);
    });
  }

  static async open(browser: Browser, url: string, example: string): Promise<GalleryPage> {
    const page = await browser.newPage();
    const gallery = new GalleryPage(page, example);
    await page.goto(`${url}#${example}`, { waitUntil: 'load' });
    return gallery;
  }

  /** Clicks the gallery's tab for `example`, as a person switching examples. */
  async openTab(example: string): Promise<void> {
    await this.page.bringToFront();
    await this.page.click(`nav a[href="#${example}"]`);
    this.example = example;
  }

  private get section(): string {
    return `section#${this.example}`;
  }

  /** Types a line into the example's form and presses Enter. */
  async send(text: string): Promise<void> {
    const input = `${this.section} input[name=text]`;
    await this.page.bringToFront(); // a person types into the window in front
    await this.page.click(input);
    await this.page.type(input, text, { delay: 10 });
    await this.page.keyboard.press('Enter');
  }

  /** The text of each line in the example's list, oldest first. */
  lines(): Promise<string[]> {
    return this.page.$$eval(`${this.section} .log li .text`, (els: any[]) => els.map((e) => e.textContent as string));
  }

  /** Every line's visible text (time, id and message). */
  fullLines(): Promise<string[]> {
    return this.page.$$eval(`${this.section} .log li`, (els: any[]) => els.map((e) => e.textContent as string));
  }

  status(): Promise<string> {
    return this.page.$eval(`${this.section} .status`, (el: any) => `${el.dataset.state}: ${el.textContent}`);
  }

  error(): Promise<string> {
    return this.page.$eval(`${this.section} .error`, (el: any) => el.textContent as string);
  }

  /** Waits until the status line is in `state` and its text matches `pattern`. */
  async waitForStatus(state: string, pattern: RegExp): Promise<void> {
    await this.waitFor(`status ${state} ${pattern}`, (sel: string, st: string, src: string, flags: string) => {
      const el = document.querySelector(`${sel} .status`);
      return el.dataset.state === st && new RegExp(src, flags).test(el.textContent);
    }, this.section, state, pattern.source, pattern.flags);
  }

  /** Waits until some line's text is exactly `text`. */
  async waitForLine(text: string): Promise<void> {
    await this.waitFor(`a line ${JSON.stringify(text)}`, (sel: string, want: string) =>
      [...document.querySelectorAll(`${sel} .log li .text`)].some((el: any) => el.textContent === want), this.section, text);
  }

  /** Waits until the error line matches `pattern`. */
  async waitForError(pattern: RegExp): Promise<void> {
    await this.waitFor(`error ${pattern}`, (sel: string, src: string, flags: string) =>
      new RegExp(src, flags).test(document.querySelector(`${sel} .error`).textContent), this.section, pattern.source, pattern.flags);
  }

  async screenshot(name: string): Promise<void> {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await this.page.bringToFront(); // a tab in the background may not paint a new frame for a long time
    await this.page.screenshot({ path: new URL(`${name}.png`, SCREENSHOT_DIR).pathname as `${string}.png`, fullPage: true });
  }

  close(): Promise<void> {
    return this.page.close();
  }

  /** waitForFunction with a deadline, failing with what was awaited and what the page shows. */
  private async waitFor(what: string, fn: (...args: any[]) => boolean, ...args: unknown[]): Promise<void> {
    try {
      await this.page.waitForFunction(fn, { timeout: WAIT_MS, polling: 50 }, ...args);
    } catch (err) {
      const shown = await Promise.all([this.status(), this.error(), this.lines()]).catch(() => ['?', '?', []]);
      throw new Error(`${this.example} page: waited ${WAIT_MS} ms for ${what}; it shows ${JSON.stringify(shown)} (${(err as Error).message.split('\n')[0]})`);
    }
  }
}
