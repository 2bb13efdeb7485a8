import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

// README and docs/ are all a user gets (they ship in the npm package too): nothing in them may
// point outside the repository, neither to developers' notes nor to web pages.

const root = new URL('../../', import.meta.url);
const pages = ['README.md', ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

test('README and docs/ link only to files in the repository and name no outside document', (t) => {
  t.true(pages.includes('docs/grip.md'));
  for (const page of pages) {
    const text = readFileSync(new URL(page, root), 'utf8');
    const dir = new URL(page.includes('/') ? 'docs/' : './', root);
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const path = target!.split('#')[0]!;
      t.false(/^[a-z]+:/i.test(path), `${page} links to ${target}`);
      if (path !== '') t.true(existsSync(new URL(path, dir)), `${page} links to ${target}, which exists`);
    }
    t.notRegex(text, /shared\/|grip-spec|\bspec(ification)?\s*(section\s*)?§?\d|§/i, `${page} cites an outside specification`);
    // URLs in examples name local or made-up hosts only (no dot in the name, or loopback).
    for (const [url, host] of text.matchAll(/\bhttps?:\/\/([^/:\s`'")\]]+)/g)) {
      t.true(!host!.includes('.') || /^(127\.0\.0\.1|\d+\.\d+\.\d+\.\d+)$/.test(host!), `${page} points to ${url}`);
    }
  }
});
