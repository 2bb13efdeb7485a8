// Where a client request goes at the origin: the origin base URL's path, then the request's
// path and query. Pure.
//
// The request target is never resolved as a URL against the base: "//evil.test/x" (a valid
// origin-form path) or "http://evil.test/" (absolute-form, which HTTP/1.1 servers must accept)
// would then replace the origin's host, turning the sidecar into an open proxy. Only the path
// and query of the target are used, and the host always stays the origin's.

export function originUrl(base: URL, requestTarget: string | undefined): URL {
  let target = requestTarget ?? '/';
  if (!target.startsWith('/')) {
    // absolute-form ("http://host/path?q") or asterisk-form ("*"): keep path and query only.
    try {
      const parsed = new URL(target);
      target = parsed.pathname + parsed.search;
    } catch {
      target = '/';
    }
  }
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const url = new URL(base.href);
  const prefix = url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
  url.pathname = prefix + path;
  url.search = q < 0 ? '' : target.slice(q);
  url.hash = '';
  return url;
}
