import { KgError } from '../errors.js';

// Where a client request goes at the origin: the origin base URL's path, then the request's
// path and query. Pure.
//
// The request target is never resolved as a URL against the base: "//evil.test/x" (a valid
// origin-form path) or "http://evil.test/" (absolute-form, which HTTP/1.1 servers must accept)
// would then replace the origin's host, turning the sidecar into an open proxy. Only the path
// and query of the target are used, and the host always stays the origin's.
//
// Nor may the path leave the base path: the URL parser resolves dot segments ("..", "%2e%2e",
// ".%2e" in any case, with "\" as a separator too, tabs and newlines removed), so
// base /api + "/../admin" would become /admin. Dot segments are resolved here first, within the
// request's own path, the way the parser would; a path that climbs above its root is refused
// with 400, as nginx (and so Kong) refuses one that climbs above "/". A ".." joined to its
// neighbours by an encoded slash ("..%2F") is refused too: origins differ in whether they decode
// %2F before resolving.

/** Text of the 400; names nothing about the origin. */
export const PATH_OUTSIDE_BASE_TEXT = 'Bad Request: the request path leads outside the service\'s base path.';

export function originUrl(base: URL, requestTarget: string | undefined): URL {
  let target = requestTarget ?? '/';
  if (!target.startsWith('/')) {
    // absolute-form ("http://host/path?q") or asterisk-form ("*"): keep path and query only.
    // The parser has resolved dot segments already, so take them from the raw text.
    try {
      const parsed = new URL(target);
      const rawPath = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]*([^?#]*)/i.exec(target)?.[1];
      target = (rawPath === undefined || rawPath === '' ? parsed.pathname : rawPath) + parsed.search;
    } catch {
      target = '/';
    }
  }
  const q = target.indexOf('?');
  const path = resolveDotSegments(q < 0 ? target : target.slice(0, q));
  const url = new URL(base.href);
  const prefix = url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
  url.pathname = prefix + path;
  url.search = q < 0 ? '' : target.slice(q);
  url.hash = '';
  // After resolveDotSegments only a target that is no path at all ("mailto:x" keeps "x") gets
  // here; checked for every request all the same, since this is the boundary.
  if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) throw outside();
  return url;
}

/** Characters without which a path has no dot segment the URL parser would resolve. */
const MAYBE_DOTS = /[.\\\t\n\r]|%2e/i;
const ENCODED_SEPARATOR = /%2f|%5c/i;

/**
 * `path` (starting with "/") with its dot segments resolved, as the WHATWG URL parser would;
 * throws KG_ERR_PATH_INVALID when it climbs above its root.
 */
export function resolveDotSegments(path: string): string {
  if (!MAYBE_DOTS.test(path)) return path;
  const segments = path.replace(/[\t\n\r]/g, '').slice(1).split(/[/\\]/);
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    const isLast = i === segments.length - 1;
    const dots = dotSegment(segment);
    if (dots === 0) {
      if (ENCODED_SEPARATOR.test(segment) && segment.split(ENCODED_SEPARATOR).some((s) => dotSegment(s) === 2)) throw outside();
      out.push(segment);
      continue;
    }
    if (dots === 2) {
      if (out.length === 0) throw outside();
      out.pop();
    }
    if (isLast) out.push('');
  }
  return `/${out.join('/')}`;
}

/** 1 for ".", 2 for "..", in the URL parser's spellings (%2e in any case); else 0. */
function dotSegment(segment: string): 0 | 1 | 2 {
  switch (segment.length) {
    case 1: return segment === '.' ? 1 : 0;
    case 2: return segment === '..' ? 2 : 0;
    case 3: return segment.toLowerCase() === '%2e' ? 1 : 0;
    case 4: {
      const lower = segment.toLowerCase();
      return lower === '.%2e' || lower === '%2e.' ? 2 : 0;
    }
    case 6: return segment.toLowerCase() === '%2e%2e' ? 2 : 0;
    default: return 0;
  }
}

function outside(): KgError {
  return new KgError('KG_ERR_PATH_INVALID', PATH_OUTSIDE_BASE_TEXT);
}
