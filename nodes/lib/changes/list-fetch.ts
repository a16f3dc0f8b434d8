/**
 * The trigger's list request: one poll's list, every page of it, through the connection, and the records of
 * each page found by one rule (the automatic lookup, a path, or an expression the adapter evaluates).
 */
import { OAuth2Error } from '../errors';
import { renderConnectionValues } from '../connection-values';
import type { Authorizer } from '../http/authorizer';
import { fetchPages, type ResumePoint } from '../http/pagination';
import { findRecords, recordsNotFound } from '../http/records';
import { resolveRequestUrl, sendAuthorised, type AuthorisedRequest, type SendDeps } from '../http/request';
import { parseHttpDate, retryPolicy } from '../http/retry';
import { httpStatusError } from '../http/status';
import { listBody, SINCE_PLACEHOLDER, type ParsedTrigger } from '../trigger-settings';
import type { FetchResult } from './poller';

/** The records of one page's body; undefined when it has none. */
export type RecordsOf = (body: unknown) => unknown[] | undefined | Promise<unknown[] | undefined>;

/**
 * The trigger's records rule. `evaluate` runs the JSONata expression of a 'jsonata' setting (Node-RED's
 * JSONata, which the adapter holds); a result that is not a list is a list of one.
 */
export function recordsRule(records: ParsedTrigger['records'], evaluate?: (body: unknown) => Promise<unknown>): RecordsOf {
  if (records.type === 'auto') return (body) => findRecords(body);
  if (records.type === 'path') return (body) => findRecords(body, records.path);
  if (!evaluate) throw new Error('a JSONata records setting needs an evaluator');
  return async (body) => {
    const result = await evaluate(body);
    return Array.isArray(result) ? result : result === undefined ? undefined : [result];
  };
}

/** Where the list is fetched from: the connection's pipeline and its API base URL. */
export interface ListSource {
  authorizer: Authorizer;
  agents: SendDeps['agents'];
  apiBaseUrl?: string;
  /**
   * The connection's values at the time of a poll (connection-values.ts): `{{{connection.name}}}` in the URL,
   * and `apiBaseUrl`, which then replaces the one above (a provider's instance URL learnt at login).
   */
  values?: () => Readonly<Record<string, string>>;
}

/** One poll's fetch for the poller (lib/changes/poller.ts). Throws OAuth2Error. */
export function listFetcher(
  config: ParsedTrigger,
  source: ListSource,
  recordsOf: RecordsOf,
): (query: Record<string, string>, signal: AbortSignal, resume?: ResumePoint) => Promise<FetchResult> {
  return async (query, signal, resume) => {
    const values = source.values?.();
    const url = resolveRequestUrl(values ? renderConnectionValues(config.url, values) : config.url, values?.apiBaseUrl ?? source.apiBaseUrl);
    for (const [name, value] of Object.entries(query)) if (name !== SINCE_PLACEHOLDER) url.searchParams.set(name, value);
    const watermark = config.settings.watermark;
    const since = watermark ? query[watermark.param] : undefined;
    const first: AuthorisedRequest = {
      method: config.method,
      url: url.href,
      headers: { accept: 'application/json' },
      // A POST list is a query (a search): its body is the configured one with the watermark put in.
      ...(config.method === 'POST' && config.body !== undefined ? { body: listBody(config.body, since, watermark?.format) } : {}),
      timeoutMs: config.timeoutMs ?? 60_000,
      responseMode: 'obj',
      followRedirects: true,
      maxRedirects: 5,
      // The poller backs off between polls; inside a poll, one quick retry of a transient failure is enough.
      // A POST here reads (a search or list query), so it is retried like a GET.
      retry: retryPolicy({ maxAttempts: 2, retryUnsafeMethods: true }),
      maxResponseBytes: config.maxResponseBytes,
      // A node closing (redeploy) abandons the poll: nothing was emitted, so nothing is lost.
      signal,
    };
    const records: unknown[] = [];
    let serverTime: number | undefined;
    const result = await fetchPages(
      first,
      config.pagination,
      // A JSONata expression may filter the page's list: the list the automatic lookup finds, when it finds
      // one, is what says the page is empty (lib/http/pagination.ts, listOf).
      {
        maxPages: config.maxPages,
        findRecords: recordsOf,
        keepPages: false,
        ...(resume ? { resume } : {}),
        ...(config.records.type === 'jsonata' ? { listOf: (body: unknown) => findRecords(body) } : {}),
      },
      (req) => sendAuthorised(req, { authorizer: source.authorizer, agents: source.agents }),
      (page) => {
        const { response } = page;
        if (response.statusCode < 200 || response.statusCode >= 300) throw httpStatusError(response);
        if (response.decodeWarning) throw new OAuth2Error('OAUTH2_RESPONSE_DECODE_FAILED', 'The list response is not JSON');
        // The API's clock when the poll began reading: it bounds the watermark (lib/changes/watermark.ts).
        if (page.index === 0) serverTime = parseHttpDate(response.headers.date);
        if (!page.records) throw recordsNotFound(config.records.path);
        for (const record of page.records) records.push(record);
      },
    );
    const out: FetchResult = { records, complete: result.complete, pages: result.count };
    if (serverTime !== undefined) out.serverTime = serverTime;
    if (result.next) out.next = result.next;
    return out;
  };
}
