import { createHash } from 'node:crypto';
import mustache from 'mustache';
import { OAuth2Error, isOAuth2Error } from './lib/errors';
import { createAgents } from './lib/http/agents';
import { maxResponseBytes } from './lib/http/body';
import { fetchPages, paginationFromConfig, validatePagination, type Page } from './lib/http/pagination';
import { DEFAULT_RECORD_PROPERTIES, findRecords } from './lib/http/records';
import { sendAuthorised, resolveRequestUrl, type AuthorisedRequest, type AuthorisedResponse } from './lib/http/request';
import type { RetryPolicy } from './lib/http/retry';
import type { ConnectionState } from './lib/tokens/token-manager';
import type { ConnectionNode } from './connection-node';
import { toNodeError } from './node-errors';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './node-red-types';

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);
const RETURN_MODES = new Set(['txt', 'bin', 'obj', 'auto']);
/** Header the node adds to its output so a following request node does not send response headers on. */
const RESPONSE_HASH_HEADER = 'x-node-red-request-node';

interface RequestNodeDef extends NodeDef {
  connection?: string;
  method?: string;
  url?: string;
  paytoqs?: string | boolean;
  headers?: Array<{ k?: string; v?: string }>;
  ret?: string;
  requestTimeout?: string | number;
  tls?: string;
  followRedirects?: boolean;
  maxRedirects?: string | number;
  /** Max response size (MB), decoded; empty means DEFAULT_MAX_RESPONSE_MB. */
  maxResponseMb?: string | number;
  retryStatuses?: string;
  maxAttempts?: string | number;
  retryUnsafe?: boolean;
  maxRetryAfterSec?: string | number;
  non2xxAsOutput?: boolean;
  pagination?: string;
  paginationPath?: string;
  paginationParam?: string;
  pageStart?: string | number;
  pageSizeParam?: string;
  pageSize?: string | number;
  maxPages?: string | number;
  recordsPath?: string;
  pageOutput?: string;
}

interface TlsConfigNode extends Node<never> {
  addTLSOptions(opts: Record<string, unknown>): void;
}

function numberOr(value: unknown, fallback: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() ? Number(value) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

function headersHash(headers: Record<string, unknown>): string {
  const sorted = Object.keys(headers).filter((k) => k !== RESPONSE_HASH_HEADER).sort();
  return createHash('sha1').update(JSON.stringify(sorted.map((k) => [k, headers[k]]))).digest('hex');
}

/** msg.headers to send on: dropped when they are the untouched response headers of a previous request node. */
function inputHeaders(msg: NodeMessage): Record<string, unknown> {
  const headers = msg.headers;
  if (!headers || typeof headers !== 'object' || Array.isArray(headers)) return {};
  const record = headers as Record<string, unknown>;
  if (typeof record[RESPONSE_HASH_HEADER] === 'string' && record[RESPONSE_HASH_HEADER] === headersHash(record)) return {};
  return record;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

function invalidInput(field: string, reason: string, value?: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_INPUT', `Invalid input: ${field} ${reason}`, { params: { field, reason, value } });
}

export = function register(RED: NodeAPI): void {
  function HttpOAuth2RequestNode(this: Node<never>, def: RequestNodeDef): void {
    RED.nodes.createNode(this, def);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- Node-RED constructors are called with `this`
    const node = this;
    const connectionNode = def.connection ? (RED.nodes.getNode(def.connection) as ConnectionNode | null) : null;
    const nodeUrl = typeof def.url === 'string' ? def.url.trim() : '';
    const isTemplatedUrl = nodeUrl.includes('{{');
    const method = (def.method || 'GET').toUpperCase();
    const paytoqs = def.paytoqs === true || def.paytoqs === 'query' ? 'query' : def.paytoqs === 'body' ? 'body' : 'ignore';
    const ret = RETURN_MODES.has(def.ret ?? '') ? (def.ret as 'txt' | 'bin' | 'obj' | 'auto') : 'obj';
    const nodeHeaders = (Array.isArray(def.headers) ? def.headers : []).filter((h) => h && typeof h.k === 'string' && h.k.trim());
    const defaultTimeout = numberOr(def.requestTimeout, numberOr(RED.settings.httpRequestTimeout, 120_000));
    const retryStatuses = String(def.retryStatuses ?? '429,502,503,504')
      .split(/[\s,]+/).filter(Boolean).map(Number).filter((s) => Number.isInteger(s) && s >= 100 && s <= 599);
    const retry: RetryPolicy = {
      maxAttempts: Math.max(1, Math.floor(numberOr(def.maxAttempts, 3))),
      statuses: retryStatuses,
      retryNetworkErrors: true,
      retryUnsafeMethods: def.retryUnsafe === true,
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      maxRetryAfterMs: Math.max(0, numberOr(def.maxRetryAfterSec, 60)) * 1000,
    };
    const maxRedirects = Math.max(0, Math.floor(numberOr(def.maxRedirects, 5)));
    const followRedirects = def.followRedirects !== false;
    const maxResponse = maxResponseBytes(def.maxResponseMb);
    const pagination = paginationFromConfig(def);
    const maxPagesText = typeof def.maxPages === 'number' ? String(def.maxPages) : text(def.maxPages);
    const maxPages = maxPagesText === '' ? 10 : Number(maxPagesText);
    const recordsPath = text(def.recordsPath);
    const pageOutput: 'all' | 'each' = def.pageOutput === 'each' ? 'each' : 'all';
    // A bad pagination setting shows at deploy (red status) and fails each message with its field named.
    let paginationError: OAuth2Error | undefined;
    if (pagination.kind !== 'none') {
      try {
        validatePagination(pagination);
        if (!(Number.isInteger(maxPages) && maxPages >= 1)) {
          throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid pagination setting: maxPages', { params: { field: 'maxPages', reason: 'invalidNumber' } });
        }
      } catch (err) {
        paginationError = err as OAuth2Error;
      }
    }

    // A node with its own TLS settings needs its own agents; otherwise it shares the connection's keep-alive pool.
    let ownAgents: ReturnType<typeof createAgents> | undefined;
    if (def.tls) {
      const tlsNode = RED.nodes.getNode(def.tls) as TlsConfigNode | null;
      if (tlsNode && typeof tlsNode.addTLSOptions === 'function') {
        const tls: Record<string, unknown> = {};
        tlsNode.addTLSOptions(tls);
        ownAgents = createAgents({ tls: tls as Parameters<typeof createAgents>[0]['tls'] });
      }
    }

    let inFlight = 0;
    let connectionState: ConnectionState | undefined;

    const t = (key: string, params?: Record<string, unknown>): string => RED._(`http-oauth2-request.${key}`, params);
    // Engine errors are translated by the connection's catalog, which holds every error code's text.
    const translate = (err: unknown): Error =>
      connectionNode ? connectionNode.toNodeError(err) : toNodeError(err, (key, params) => t(key, params));

    function configErrorStatus(err: OAuth2Error): { fill: 'red'; shape: 'ring'; text: string } {
      return { fill: 'red', shape: 'ring', text: t('status.failed', { code: err.code }) };
    }

    function showConnectionState(): boolean {
      if (connectionNode?.storeUnavailable && connectionState?.kind !== 'login-required') {
        node.status({ fill: 'yellow', shape: 'ring', text: 'http-oauth2-request.status.storeUnavailable' });
        return true;
      }
      if (!connectionState) return false;
      if (connectionState.kind === 'login-required') {
        const lost = connectionState.error?.params.reason === 'refreshAnswerLost';
        node.status({ fill: 'red', shape: 'ring', text: lost ? 'http-oauth2-request.status.loginRequiredAnswerLost' : 'http-oauth2-request.status.loginRequired' });
        return true;
      }
      if (connectionState.kind === 'refused') {
        // The token endpoint refused the connection's client (invalid_client...): no request can succeed until
        // its settings are corrected and deployed.
        node.status({ fill: 'red', shape: 'ring', text: t('status.refused', { error: connectionState.error.oauthError ?? connectionState.error.code }) });
        return true;
      }
      if (connectionState.kind === 'unavailable' && connectionState.error.code === 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE') {
        node.status({ fill: 'yellow', shape: 'ring', text: 'http-oauth2-request.status.unavailable' });
        return true;
      }
      if (connectionState.kind === 'unavailable' && connectionState.error.code === 'OAUTH2_TOKEN_STORE_FAILED') {
        // Redis (or the token file) is failing: held tokens still work until they expire, renewals wait.
        node.status({ fill: 'yellow', shape: 'ring', text: 'http-oauth2-request.status.storeUnavailable' });
        return true;
      }
      return false;
    }

    const onStoreStatus = (): void => {
      if (!showConnectionState() && inFlight === 0) node.status(paginationError ? configErrorStatus(paginationError) : {});
    };
    const onState = (state: ConnectionState): void => {
      connectionState = state;
      onStoreStatus();
    };
    if (connectionNode?.connection) {
      connectionNode.connection.on('state', onState);
      connectionNode.on('store-status', onStoreStatus);
      connectionState = connectionNode.connection.state();
      showConnectionState();
    } else if (connectionNode?.configError) {
      node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code: connectionNode.configError.code }) });
    } else {
      node.status({ fill: 'red', shape: 'ring', text: 'http-oauth2-request.errors.noConnection' });
    }
    if (paginationError && connectionNode?.connection && !showConnectionState()) node.status(configErrorStatus(paginationError));

    function buildHeaders(msg: NodeMessage): Record<string, string | string[]> {
      const out: Record<string, string | string[]> = {};
      const names = new Map<string, string>();
      const put = (name: string, value: unknown, field: string): void => {
        const lower = name.toLowerCase();
        // The connection chooses the credential; a message must not be able to replace it.
        if (lower === 'authorization' || lower === RESPONSE_HASH_HEADER) return;
        let v: string | string[];
        if (Array.isArray(value)) v = value.map((x) => String(x));
        else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') v = String(value);
        else if (value === undefined || value === null) return;
        else throw invalidInput(field, 'invalidHeader', name);
        const previous = names.get(lower);
        if (previous) delete out[previous];
        names.set(lower, name);
        out[name] = v;
      };
      for (const [name, value] of Object.entries(inputHeaders(msg))) put(name, value, 'msg.headers');
      for (const h of nodeHeaders) put(String(h.k).trim(), mustacheIf(h.v ?? '', msg), 'headers');
      return out;
    }

    function mustacheIf(text: string, msg: NodeMessage): string {
      return text.includes('{{') ? mustache.render(text, msg) : text;
    }

    function requestTimeout(msg: NodeMessage): number {
      if (msg.requestTimeout === undefined) return defaultTimeout;
      const value = Number(msg.requestTimeout);
      if (!Number.isFinite(value) || value < 1) {
        node.warn(t('errors.invalidTimeout', { value: String(msg.requestTimeout) }));
        return defaultTimeout;
      }
      return value;
    }

    function setResponse(msg: NodeMessage, response: AuthorisedResponse): void {
      msg.payload = response.body;
      msg.statusCode = response.statusCode;
      const headers: Record<string, unknown> = { ...response.headers };
      headers[RESPONSE_HASH_HEADER] = headersHash(headers);
      msg.headers = headers;
      msg.responseUrl = response.responseUrl;
      msg.redirectList = response.redirectList;
      msg.attempts = response.attempts;
    }

    function statusError(response: AuthorisedResponse): OAuth2Error {
      return new OAuth2Error('OAUTH2_HTTP_STATUS', `HTTP ${response.statusCode}`, {
        statusCode: response.statusCode,
        params: { statusCode: response.statusCode },
      });
    }

    // Pagination runs many requests per message: closing the node stops it between pages.
    const running = new Set<AbortController>();
    let closing = false;

    /**
     * Fetches every page for one message and sends the output ('each': one message per page as it arrives;
     * 'all': one message with every page's records). Resolves with the error to raise, if any; throws for
     * failures with no response (network, token, records not found) as the single-request path does.
     */
    async function paginate(
      msg: NodeMessage,
      request: AuthorisedRequest,
      deps: Parameters<typeof sendAuthorised>[1],
      send: (msg: NodeMessage) => void,
    ): Promise<OAuth2Error | undefined> {
      const controller = new AbortController();
      running.add(controller);
      const records: unknown[] = [];
      let warned = false;
      let sentPages = 0;
      const onPage = (page: Page): void => {
        const response = page.response;
        const ok = response.statusCode >= 200 && response.statusCode < 300;
        if (response.decodeWarning && !warned) {
          warned = true;
          node.warn(t('errors.jsonDecode'));
        }
        if (inFlight === 1 && !showConnectionState()) {
          node.status({ fill: 'blue', shape: 'dot', text: t('status.page', { page: page.index + 1 }) });
        }
        if (pageOutput === 'each') {
          // The page that ends in an error is raised below with msg, not sent.
          if (!ok && !def.non2xxAsOutput) return;
          // Messages are delivered later: each page needs its own copy of the input message.
          const out = RED.util.cloneMessage(msg);
          setResponse(out, response);
          out.page = page.index;
          send(out);
          sentPages += 1;
          return;
        }
        if (!ok) return;
        if (page.records === undefined) {
          // The caught message shows the body that had no records.
          setResponse(msg, response);
          throw recordsNotFound();
        }
        // push(...page.records) would overflow the stack on a page of a few hundred thousand records.
        for (const record of page.records) records.push(record);
      };
      let result: Awaited<ReturnType<typeof fetchPages>>;
      try {
        result = await fetchPages(
          { ...request, signal: controller.signal },
          pagination,
          { maxPages, findRecords: (body) => findRecords(body, recordsPath), keepPages: false },
          (req) => sendAuthorised(req, deps),
          onPage,
        );
      } finally {
        running.delete(controller);
      }
      const last = result.last.response;
      const ok = last.statusCode >= 200 && last.statusCode < 300;
      if (result.stop === 'loop') node.warn(t('errors.paginationLoop', { pages: result.count }));
      if (result.stop === 'records-not-found') {
        // Page or offset counting could not go on ('each' mode; 'all' mode has thrown already).
        setResponse(msg, last);
        throw recordsNotFound();
      }
      inFlight -= 1;
      if (!ok && !def.non2xxAsOutput) {
        setResponse(msg, last);
        if (pageOutput === 'each') msg.page = result.last.index;
        msg.pages = result.count;
        msg.complete = false;
        node.status({ fill: 'red', shape: 'ring', text: t('status.error', { statusCode: last.statusCode }) });
        return statusError(last);
      }
      if (!showConnectionState()) {
        node.status(inFlight > 0
          ? { fill: 'blue', shape: 'dot', text: t('status.inFlight', { count: inFlight }) }
          : {
              fill: ok && result.complete ? 'green' : 'yellow',
              shape: 'dot',
              text: t(result.complete ? 'status.pages' : 'status.pagesIncomplete', { statusCode: last.statusCode, count: result.count }),
            });
      }
      if (pageOutput === 'all') {
        setResponse(msg, last);
        msg.payload = records;
        msg.pages = result.count;
        msg.complete = result.complete;
        send(msg);
      } else if (sentPages === 0) {
        // Not reachable today (a first page is either sent or raised), kept so a message is never swallowed.
        setResponse(msg, last);
        msg.page = 0;
        send(msg);
      }
      return undefined;
    }

    function recordsNotFound(): OAuth2Error {
      return new OAuth2Error('OAUTH2_RECORDS_NOT_FOUND', 'No list of records was found in the response', {
        // The trigger names the same places, so both read alike in the catalog's text.
        params: { path: recordsPath || DEFAULT_RECORD_PROPERTIES.join(', ') },
      });
    }

    node.on('input', (msg, send, done) => {
      void (async () => {
        if (!connectionNode?.connection) {
          // A connection that failed its configuration says why, with its code; none at all is a node error.
          done(connectionNode?.configError ?? toNodeError(new Error(t('errors.noConnection')), () => ''));
          return;
        }
        const connection = connectionNode.connection;
        inFlight += 1;
        node.status({ fill: 'blue', shape: 'dot', text: t('status.inFlight', { count: inFlight }) });
        try {
          if (paginationError) throw paginationError;
          const requestedMethod = method === 'USE' ? String(msg.method ?? '').toUpperCase() : method;
          if (!METHODS.has(requestedMethod)) {
            throw method === 'USE'
              ? invalidInput('msg.method', 'invalidMethod', String(msg.method ?? ''))
              : invalidInput('method', 'invalidMethod', method);
          }
          const rawUrl = isTemplatedUrl ? mustache.render(nodeUrl, msg) : nodeUrl || (typeof msg.url === 'string' ? msg.url : '');
          if (!rawUrl) throw invalidInput('msg.url', 'required');
          const url = resolveRequestUrl(rawUrl, connection.settings.apiBaseUrl);
          const request: AuthorisedRequest = {
            method: requestedMethod,
            url: url.href,
            headers: buildHeaders(msg),
            body: msg.payload,
            paytoqs,
            timeoutMs: requestTimeout(msg),
            responseMode: ret,
            followRedirects,
            maxRedirects,
            retry,
            maxResponseBytes: maxResponse,
          };
          const deps = { authorizer: connection, agents: ownAgents ?? connection.agents };
          if (pagination.kind !== 'none') {
            const failure = await paginate(msg, request, deps, send);
            done(failure && !closing ? translate(failure) : undefined);
            return;
          }
          const response: AuthorisedResponse = await sendAuthorised(request, deps);
          setResponse(msg, response);
          if (response.decodeWarning) node.warn(t('errors.jsonDecode'));
          const ok = response.statusCode >= 200 && response.statusCode < 300;
          inFlight -= 1;
          if (!ok && !def.non2xxAsOutput) {
            node.status({ fill: 'red', shape: 'ring', text: t('status.error', { statusCode: response.statusCode }) });
            done(translate(statusError(response)));
            return;
          }
          if (!showConnectionState()) {
            node.status(inFlight > 0
              ? { fill: 'blue', shape: 'dot', text: t('status.inFlight', { count: inFlight }) }
              : { fill: ok ? 'green' : 'yellow', shape: 'dot', text: t('status.ok', { statusCode: response.statusCode }) });
          }
          send(msg);
          done();
        } catch (err) {
          inFlight -= 1;
          if (closing && pagination.kind !== 'none') {
            // Stopped between pages because the node is closing (redeploy): not an error of the flow.
            done();
            return;
          }
          if (!showConnectionState()) {
            const code = isOAuth2Error(err) ? err.code : 'ERROR';
            if (isOAuth2Error(err) && code === 'OAUTH2_LOGIN_REQUIRED') {
              // Never logged in: the connection has no state to show yet, but the words are the same.
              const lost = err.params.reason === 'refreshAnswerLost';
              node.status({ fill: 'red', shape: 'ring', text: lost ? 'http-oauth2-request.status.loginRequiredAnswerLost' : 'http-oauth2-request.status.loginRequired' });
            } else {
              node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code }) });
            }
          }
          done(translate(err));
        }
      })();
    });

    node.on('close', (_removed: boolean, closeDone: () => void) => {
      closing = true;
      for (const controller of running) controller.abort();
      connectionNode?.connection?.removeListener('state', onState);
      connectionNode?.removeListener('store-status', onStoreStatus);
      ownAgents?.destroy();
      node.status({});
      closeDone();
    });
  }

  RED.nodes.registerType('http-oauth2-request', HttpOAuth2RequestNode as (this: Node<never>, def: NodeDef) => void);
};
