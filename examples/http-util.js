// Small HTTP helpers the example origin's handlers share. Node built-ins only (the compose
// origin container has no node_modules).

/** Longest chat line, note or feed event the examples accept, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 2000;

/** The request body, or undefined if it is over `max` bytes (the rest is not read). */
export async function readBody(req, max) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A posted line of text: `{ text }`, or `{ problem }` saying what is wrong with it. */
export async function readText(req) {
  const body = await readBody(req, MAX_TEXT_BYTES);
  const text = body?.toString('utf8').trim() ?? '';
  if (body === undefined || text === '') return { problem: `message must be 1-${MAX_TEXT_BYTES} bytes` };
  return { text };
}

export function sendText(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

export function sendJson(res, status, value, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(`${JSON.stringify(value)}\n`);
}

/** A chat line as JSON, what every example's messages carry: `kind: "error"` marks a notice about a failure. */
export function line(text, { at = new Date().toISOString(), kind } = {}) {
  return JSON.stringify(kind === undefined ? { text, at } : { text, at, kind });
}

/** `Grip-Last: <channel>; last-id=<id>` (sent by the sidecar on a recovery): the id for `channel`, if any. */
export function gripLastId(req, channel) {
  const raw = req.headers['grip-last'];
  if (raw === undefined) return undefined;
  for (const entry of raw.split(',')) {
    const [name, ...params] = entry.split(';').map((s) => s.trim());
    if (name !== channel) continue;
    for (const p of params) if (p.startsWith('last-id=')) return p.slice('last-id='.length).replace(/^"(.*)"$/, '$1');
  }
  return undefined;
}

/**
 * Publishes items to a sidecar's publish API (Pushpin's `POST /publish/` body). Resolves to true
 * once the sidecar accepted them, false if it refused or could not be reached within 5 s.
 */
export function createPublish(publishUrl) {
  return (item) => fetch(publishUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ items: [item] }),
    signal: AbortSignal.timeout(5000),
  }).then((r) => r.ok, () => false);
}
