import { DirectiveError, expandDirectives, type DirectiveHandler } from './directives.js';

// Pushpin's built-in filters (docs/grip.md, "Meta and filters"), as pure functions of a connection's meta and channels
// and an item's meta and content. A channel subscription lists filters by name, in order:
//
//   delivery  skip-self, skip-users, require-sub   decide whether the item goes to this connection
//   content   build-id, var-subst                  rewrite the item's content for this connection
//
// Every filter's decision is taken first (the first `drop` wins), then the content filters run in
// order. A filter that fails drops the item for that connection (the caller logs the reason).
// Unknown names are ignored, as Pushpin does. build-id also renders the origin's own bodies
// (initial stream body, next-link pages): renderResponseBody.

export const FilterName = {
  SkipSelf: 'skip-self',
  SkipUsers: 'skip-users',
  RequireSub: 'require-sub',
  BuildId: 'build-id',
  VarSubst: 'var-subst',
} as const;

/** Filter names in Grip-Feature order (what the proxy supports). */
export const SUPPORTED_FILTERS: readonly string[] = [
  FilterName.SkipSelf, FilterName.SkipUsers, FilterName.RequireSub, FilterName.BuildId, FilterName.VarSubst,
];

const CONTENT_FILTERS = new Set<string>([FilterName.BuildId, FilterName.VarSubst]);
const KNOWN_FILTERS = new Set<string>(SUPPORTED_FILTERS);

/** Read-only views of a connection's state that the filters read. */
export interface FilterContext {
  /** The connection's subscription meta (Grip-Set-Meta, hold.meta, set-meta). */
  readonly subMeta: ReadonlyMap<string, string>;
  /** The item's meta. */
  readonly pubMeta: Readonly<Record<string, string>>;
  /**
   * The connection's channels with their current prev-ids (undefined where none is known), for
   * build-id; the item's own id already set. A channel without an id fails a `%(channel)s`.
   */
  readonly prevIds: ReadonlyMap<string, string | undefined>;
}

export type FilterOutcome =
  | { readonly type: 'send'; readonly content: Buffer }
  | { readonly type: 'drop' }
  | { readonly type: 'error'; readonly message: string };

const DROP: FilterOutcome = { type: 'drop' };

/** True when a subscription's filter list names a filter the proxy runs (so the fast path does not apply). */
export function hasActiveFilters(filters: readonly string[]): boolean {
  for (const f of filters) if (KNOWN_FILTERS.has(f)) return true;
  return false;
}

/** The content-transforming filters of a subscription, in order: what a format's content-filters must equal. */
export function contentFiltersOf(filters: readonly string[]): string[] {
  return filters.filter((f) => CONTENT_FILTERS.has(f));
}

/**
 * Content-filter agreement (docs/grip.md, "Meta and filters"): a format prepared for some content filters goes only to
 * subscriptions whose content filters are exactly those, in that order. A format without the
 * field goes to every subscription.
 */
export function contentFiltersAgree(subscriptionFilters: readonly string[], formatFilters: readonly string[] | undefined): boolean {
  if (formatFilters === undefined) return true;
  const mine = contentFiltersOf(subscriptionFilters);
  return mine.length === formatFilters.length && mine.every((f, i) => f === formatFilters[i]);
}

/** Whether the filters let the item through to this connection; the delivery filters only. */
export function deliveryDecision(filters: readonly string[], ctx: FilterContext): 'send' | 'drop' {
  for (const f of filters) {
    switch (f) {
      case FilterName.SkipSelf: {
        const user = ctx.subMeta.get('user');
        const sender = ctx.pubMeta['sender'];
        if (user !== undefined && user !== '' && sender !== undefined && sender !== '' && user === sender) return 'drop';
        break;
      }
      case FilterName.SkipUsers: {
        const user = ctx.subMeta.get('user');
        const skip = ctx.pubMeta['skip_users'];
        if (user !== undefined && user !== '' && skip !== undefined && splitUsers(skip).includes(user)) return 'drop';
        break;
      }
      case FilterName.RequireSub: {
        const required = ctx.pubMeta['require_sub'];
        if (required !== undefined && required !== '' && !ctx.prevIds.has(required)) return 'drop';
        break;
      }
      default:
        break;
    }
  }
  return 'send';
}

function splitUsers(list: string): string[] {
  return list.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * Runs a subscription's filters on one item for one connection. `content` is undefined for an
 * action without content (close, hint): then only the decision is taken.
 */
export function runFilters(filters: readonly string[], ctx: FilterContext, content: Buffer | undefined): FilterOutcome {
  if (deliveryDecision(filters, ctx) === 'drop') return DROP;
  if (content === undefined) return { type: 'send', content: Buffer.alloc(0) };
  let out = content;
  for (const f of filters) {
    try {
      if (f === FilterName.BuildId) out = renderIds(out, buildIdHandler(ctx.subMeta, ctx.prevIds));
      else if (f === FilterName.VarSubst) out = expandDirectives(out, varSubstHandler(ctx.subMeta)).out;
    } catch (err) {
      if (err instanceof DirectiveError) return { type: 'error', message: `${f}: ${err.message}` };
      throw err;
    }
  }
  return { type: 'send', content: out };
}

function renderIds(content: Buffer, handler: DirectiveHandler): Buffer {
  return expandDirectives(content, handler).out;
}

/**
 * build-id's `%I` handler: the connection's id rendered from its id_format (`%(channel)s` = that
 * channel's prev-id), or the literal id of `%(id)I`; hex-encoded with id_encoding=hex. With no
 * channel at all (a response body) there is no default id, and a bare `%I` is an error (as in Pushpin).
 */
function buildIdHandler(subMeta: ReadonlyMap<string, string>, prevIds: ReadonlyMap<string, string | undefined>): DirectiveHandler {
  const idFormat = subMeta.get('id_format');
  if (idFormat === undefined) throw new DirectiveError("no sub meta 'id_format'");
  const encoding = subMeta.get('id_encoding');
  if (encoding !== undefined && encoding !== 'hex') throw new DirectiveError(`unsupported encoding: ${encoding}`);
  const isHex = encoding === 'hex';
  let defaultId: Buffer | undefined;
  if (prevIds.size > 0) {
    try {
      defaultId = expandDirectives(Buffer.from(idFormat, 'utf8'), (type, arg) => {
        if (type !== 's') throw new DirectiveError(`Unknown directive '${type}'`);
        if (arg === undefined) throw new DirectiveError("Directive 's' requires argument");
        const name = arg.toString('utf8');
        const value = prevIds.get(name);
        if (value === undefined) throw new DirectiveError(`No such variable '${name}'`);
        return Buffer.from(value, 'utf8');
      }).out;
    } catch (err) {
      if (err instanceof DirectiveError) throw new DirectiveError(`failed to render ID: ${err.message}`);
      throw err;
    }
  }
  return (type, arg) => {
    if (type !== 'I') throw new DirectiveError(`Unknown directive '${type}'`);
    const id = arg ?? defaultId;
    if (id === undefined) throw new DirectiveError('No ID specified and no default ID in context');
    return isHex ? Buffer.from(id.toString('hex'), 'latin1') : id;
  };
}

function varSubstHandler(subMeta: ReadonlyMap<string, string>): DirectiveHandler {
  return (type, arg) => {
    if (type !== 's') throw new DirectiveError(`Unknown directive '${type}'`);
    if (arg === undefined) throw new DirectiveError("Directive 's' requires argument");
    const name = arg.toString('utf8');
    const value = subMeta.get(name);
    if (value === undefined) throw new DirectiveError(`No such variable '${name}'`);
    return Buffer.from(value, 'utf8');
  };
}

/** The origin's body failed a filter (build-id); the message names the filter and the problem. */
export class ResponseFilterError extends Error {}

/**
 * Renders an origin body (the initial stream body, a next-link page) for build-id, as it
 * arrives: `%%` becomes `%`, `%(id)I` the id; a bare `%I` is an error (the body has no item id).
 * Undefined when no channel of the hold has build-id: the body goes out untouched.
 */
export function responseBodyRenderer(channelFilters: ReadonlyArray<readonly string[]>, subMeta: ReadonlyMap<string, string>): ResponseBodyRenderer | undefined {
  if (!channelFilters.some((filters) => filters.includes(FilterName.BuildId))) return undefined;
  return new ResponseBodyRenderer(subMeta);
}

export class ResponseBodyRenderer {
  private held: Buffer = Buffer.alloc(0);
  private handler: DirectiveHandler | undefined;

  constructor(private readonly subMeta: ReadonlyMap<string, string>) {}

  /** The rendered bytes of this piece; an unfinished directive at its end waits for the next. Throws ResponseFilterError. */
  update(chunk: Buffer): Buffer {
    const input = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    const { out, consumed } = this.expand(input, true);
    this.held = input.subarray(consumed);
    return out;
  }

  /** The rest, at the end of the body. Throws ResponseFilterError. */
  finalize(): Buffer {
    const input = this.held;
    this.held = Buffer.alloc(0);
    if (input.length === 0) return input;
    return this.expand(input, false).out;
  }

  private expand(input: Buffer, partial: boolean): { out: Buffer; consumed: number } {
    try {
      this.handler ??= buildIdHandler(this.subMeta, new Map());
      return expandDirectives(input, this.handler, partial);
    } catch (err) {
      if (err instanceof DirectiveError) throw new ResponseFilterError(`${FilterName.BuildId}: ${err.message}`);
      throw err;
    }
  }
}

/**
 * Everything a hold runs on one published format for one connection subscribed with `filters`:
 * content-filter agreement, then the filters. A format prepared for other content filters is a
 * drop for this connection (another format of the item may be meant for it).
 */
export function filterItem(
  filters: readonly string[], formatContentFilters: readonly string[] | undefined, ctx: FilterContext, content: Buffer | undefined,
): FilterOutcome {
  if (!contentFiltersAgree(filters, formatContentFilters)) return DROP;
  return runFilters(filters, ctx, content);
}
