import { isOAuth2Error, type OAuth2Error } from './lib/errors';
import { createAgents, type AgentTlsOptions } from './lib/http/agents';
import { proxySettingsFromEnv, useProxyOptions } from './lib/http/proxy';
import { collectPages } from './lib/http/pagination';
import { sendAuthorised, type AuthorisedRequest, type AuthorisedResponse, type SendDeps } from './lib/http/request';
import { httpStatusError } from './lib/http/status';
import { messageRequest, parseRequestSettings, responseFields, type RequestNodeConfig } from './lib/request-settings';
import type { ConnectionState } from './lib/tokens/token-manager';
import type { ConnectionNode } from './node-red/connection-node';
import { toNodeError } from './node-red/node-error';
import { proxyOf } from './node-red/proxy-node';
import { runtimeSetting } from './node-red/store-backend';
import { localizedStatus, publishStatusEntries } from './node-red/status-text';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus } from './node-red/types';

interface RequestNodeDef extends NodeDef, RequestNodeConfig {
  connection?: string;
  tls?: string;
  /** Id of an `http proxy` config node (the core node's setting); none: the connection's proxy. */
  proxy?: string;
}

interface TlsConfigNode extends Node<never> {
  addTLSOptions(opts: Record<string, unknown>): void;
}

/** Failures of the request itself (no usable answer): the core node sends these on as well as raising them. */
const REQUEST_FAILURES: ReadonlySet<string> = new Set(['OAUTH2_REQUEST_FAILED', 'OAUTH2_REQUEST_TIMEOUT', 'OAUTH2_TOO_MANY_REDIRECTS', 'OAUTH2_RESPONSE_TOO_LARGE']);

/** The code the core node puts in msg.statusCode for a failed request: the socket's (ECONNREFUSED...), else ours. */
function failureStatusCode(err: OAuth2Error): string {
  const code = err.params.code;
  if (typeof code === 'string' && /^(?:E|HPE_)[A-Z_]+$/.test(code)) return code;
  return err.code === 'OAUTH2_REQUEST_TIMEOUT' ? 'ETIMEDOUT' : err.code;
}

function setResponse(msg: NodeMessage, response: AuthorisedResponse): void {
  Object.assign(msg, responseFields(response));
}

export = function register(RED: NodeAPI): void {
  useProxyOptions(runtimeSetting(RED, 'proxyOptions'));
  function HttpOAuth2RequestNode(this: Node<never>, def: RequestNodeDef): void {
    RED.nodes.createNode(this, def);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- Node-RED constructors are called with `this`
    const node = this;
    // The status's catalog entry goes to the editor, which says it in its user's language.
    publishStatusEntries(RED as unknown as Parameters<typeof publishStatusEntries>[0], node);
    const connectionNode = def.connection ? (RED.nodes.getNode(def.connection) as ConnectionNode | null) : null;
    const timeoutDefault = typeof RED.settings.httpRequestTimeout === 'number' ? RED.settings.httpRequestTimeout : Number(RED.settings.httpRequestTimeout) || 120_000;
    // A bad pagination setting shows at deploy (red status) and fails each message with its field named.
    const { settings, error: paginationError } = parseRequestSettings(def, { timeoutMs: timeoutDefault });
    const pagination = settings.pagination;

    // A node with its own TLS settings or its own `http proxy` node (the core node's settings) needs its own
    // agents; otherwise it shares the connection's keep-alive pool.
    let ownAgents: ReturnType<typeof createAgents> | undefined;
    let nodeTls: AgentTlsOptions | undefined;
    if (def.tls) {
      const tlsNode = RED.nodes.getNode(def.tls) as TlsConfigNode | null;
      if (tlsNode && typeof tlsNode.addTLSOptions === 'function') {
        const tls: Record<string, unknown> = {};
        tlsNode.addTLSOptions(tls);
        nodeTls = tls as AgentTlsOptions;
      }
    }
    // The node's proxy, else the connection's (its `http proxy` node or the environment's): one transport.
    const proxy = proxyOf(RED, def.proxy) ?? connectionNode?.connection?.settings.proxy ?? proxySettingsFromEnv();
    if (nodeTls || proxyOf(RED, def.proxy)) ownAgents = createAgents({ tls: nodeTls, proxy });
    // msg.rejectUnauthorized false (the core node's): a pool of its own that does not check certificates.
    let uncheckedAgents: ReturnType<typeof createAgents> | undefined;
    const agentsFor = (msg: NodeMessage, connectionAgents: SendDeps['agents']): SendDeps['agents'] => {
      if ((msg as { rejectUnauthorized?: unknown }).rejectUnauthorized !== false) return ownAgents ?? connectionAgents;
      uncheckedAgents ??= createAgents({ tls: { ...nodeTls, rejectUnauthorized: false }, proxy });
      return uncheckedAgents;
    };

    let inFlight = 0;
    let connectionState: ConnectionState | undefined;

    const t = (key: string, params?: Record<string, unknown>): string => RED._(`http-oauth2-request.${key}`, params);
    // Engine errors are translated by the connection's catalog, which holds every error code's text.
    const translate = (err: unknown): Error =>
      connectionNode ? connectionNode.toNodeError(err) : toNodeError(err, (key, params) => t(key, params));

    function configErrorStatus(err: OAuth2Error): NodeStatus {
      return localizedStatus('red', 'ring', { key: 'status.failed', params: { code: err.code } }, 'http-oauth2-request', t);
    }

    function showConnectionState(): boolean {
      if (connectionNode?.storeUnavailable && connectionState?.kind !== 'login-required') {
        node.status(localizedStatus('yellow', 'ring', { key: 'status.storeUnavailable' }, 'http-oauth2-request', t));
        return true;
      }
      if (!connectionState) return false;
      if (connectionState.kind === 'login-required') {
        const lost = connectionState.error?.params.reason === 'refreshAnswerLost';
        node.status(localizedStatus('red', 'ring', { key: lost ? 'status.loginRequiredAnswerLost' : 'status.loginRequired' }, 'http-oauth2-request', t));
        return true;
      }
      if (connectionState.kind === 'refused') {
        // The token endpoint refused the connection's client (invalid_client...): no request can succeed until
        // its settings are corrected and deployed.
        node.status(localizedStatus('red', 'ring', { key: 'status.refused', params: { error: connectionState.error.oauthError ?? connectionState.error.code } }, 'http-oauth2-request', t));
        return true;
      }
      if (connectionState.kind === 'unavailable' && connectionState.error.code === 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE') {
        node.status(localizedStatus('yellow', 'ring', { key: 'status.unavailable' }, 'http-oauth2-request', t));
        return true;
      }
      if (connectionState.kind === 'unavailable' && connectionState.error.code === 'OAUTH2_TOKEN_STORE_FAILED') {
        // Redis (or the token file) is failing: held tokens still work until they expire, renewals wait.
        node.status(localizedStatus('yellow', 'ring', { key: 'status.storeUnavailable' }, 'http-oauth2-request', t));
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
      node.status(localizedStatus('red', 'ring', { key: 'status.failed', params: { code: connectionNode.configError.code ?? 'OAUTH2_INVALID_CONFIG' } }, 'http-oauth2-request', t));
    } else {
      node.status(localizedStatus('red', 'ring', { key: 'errors.noConnection' }, 'http-oauth2-request', t));
    }
    if (paginationError && connectionNode?.connection && !showConnectionState()) node.status(configErrorStatus(paginationError));

    // Pagination runs many requests per message: closing the node stops it between pages.
    const running = new Set<AbortController>();
    let closing = false;

    /**
     * Fetches every page for one message and sends the output ('each': one message per page as it arrives;
     * 'all': one message with every page's records). Resolves with the error to raise, if any; throws for
     * failures with no response (network, token, records not found) as the single-request path does.
     */
    async function paginate(msg: NodeMessage, request: AuthorisedRequest, deps: SendDeps, send: (msg: NodeMessage) => void): Promise<OAuth2Error | undefined> {
      const controller = new AbortController();
      running.add(controller);
      let warned = false;
      let collected: Awaited<ReturnType<typeof collectPages>>;
      try {
        collected = await collectPages(
          { ...request, signal: controller.signal },
          pagination,
          { maxPages: settings.maxPages, recordsPath: settings.recordsPath, output: settings.pageOutput, non2xxAsOutput: settings.non2xxAsOutput },
          (req) => sendAuthorised(req, deps),
          {
            onPage: (page) => {
              if (page.response.decodeWarning && !warned) {
                warned = true;
                node.warn(t('errors.jsonDecode'));
              }
              if (inFlight === 1 && !showConnectionState()) {
                node.status(localizedStatus('blue', 'dot', { key: 'status.page', params: { page: page.index + 1 } }, 'http-oauth2-request', t));
              }
            },
            sendPage: (page) => {
              // Messages are delivered later: each page needs its own copy of the input message.
              const out = RED.util.cloneMessage(msg);
              setResponse(out, page.response);
              out.page = page.index;
              send(out);
            },
          },
        );
      } finally {
        running.delete(controller);
      }
      if (collected.kind === 'records-not-found') {
        // The caught message shows the body that had no records.
        setResponse(msg, collected.response);
        throw collected.error;
      }
      const { result } = collected;
      const last = result.last.response;
      const ok = last.statusCode >= 200 && last.statusCode < 300;
      if (result.stop === 'loop') node.warn(t('errors.paginationLoop', { pages: result.count }));
      inFlight -= 1;
      if (!ok && !settings.non2xxAsOutput) {
        setResponse(msg, last);
        if (settings.pageOutput === 'each') msg.page = result.last.index;
        msg.pages = result.count;
        msg.complete = false;
        node.status(localizedStatus('red', 'ring', { key: 'status.error', params: { statusCode: last.statusCode } }, 'http-oauth2-request', t));
        return httpStatusError(last);
      }
      if (!showConnectionState()) {
        node.status(inFlight > 0
          ? localizedStatus('blue', 'dot', { key: 'status.inFlight', params: { count: inFlight } }, 'http-oauth2-request', t)
          : {
              fill: ok && result.complete ? 'green' : 'yellow',
              shape: 'dot',
              text: t(result.complete ? 'status.pages' : 'status.pagesIncomplete', { statusCode: last.statusCode, count: result.count }),
              i18n: { key: `http-oauth2-request.${result.complete ? 'status.pages' : 'status.pagesIncomplete'}`, params: { statusCode: last.statusCode, count: result.count } },
            });
      }
      if (settings.pageOutput === 'all') {
        setResponse(msg, last);
        msg.payload = collected.records;
        msg.pages = result.count;
        msg.complete = result.complete;
        send(msg);
      } else if (collected.sentPages === 0) {
        // Not reachable today (a first page is either sent or raised), kept so a message is never swallowed.
        setResponse(msg, last);
        msg.page = 0;
        send(msg);
      }
      return undefined;
    }

    node.on('input', (msg, send, done) => {
      let requestUrl: string | undefined;
      void (async () => {
        if (!connectionNode?.connection) {
          // A connection that failed its configuration says why, with its code; none at all is a node error.
          done(connectionNode?.configError ?? toNodeError(new Error(t('errors.noConnection')), () => ''));
          return;
        }
        const connection = connectionNode.connection;
        inFlight += 1;
        node.status(localizedStatus('blue', 'dot', { key: 'status.inFlight', params: { count: inFlight } }, 'http-oauth2-request', t));
        try {
          if (paginationError) throw paginationError;
          const values = connection.values();
          const { request, invalidTimeout } = messageRequest(settings, msg, connection.apiBaseUrl, values);
          requestUrl = request.url;
          // What the provider told the connection (its instance URL, tenant id...), never a token.
          (msg as NodeMessage & { oauth2?: unknown }).oauth2 = values;
          if (invalidTimeout !== undefined) node.warn(t('errors.invalidTimeout', { value: invalidTimeout }));
          const deps: SendDeps = { authorizer: connection, agents: agentsFor(msg, connection.agents) };
          if (pagination.kind !== 'none') {
            const failure = await paginate(msg, request, deps, send);
            done(failure && !closing ? translate(failure) : undefined);
            return;
          }
          const response: AuthorisedResponse = await sendAuthorised(request, deps);
          setResponse(msg, response);
          // As they are now: a refresh during the request may have brought new ones.
          (msg as NodeMessage & { oauth2?: unknown }).oauth2 = connection.values();
          if (response.decodeWarning) node.warn(t('errors.jsonDecode'));
          const ok = response.statusCode >= 200 && response.statusCode < 300;
          inFlight -= 1;
          if (!ok && !settings.non2xxAsOutput) {
            node.status(localizedStatus('red', 'ring', { key: 'status.error', params: { statusCode: response.statusCode } }, 'http-oauth2-request', t));
            done(translate(httpStatusError(response)));
            return;
          }
          if (!showConnectionState()) {
            node.status(inFlight > 0
              ? localizedStatus('blue', 'dot', { key: 'status.inFlight', params: { count: inFlight } }, 'http-oauth2-request', t)
              : localizedStatus(ok ? 'green' : 'yellow', 'dot', { key: 'status.ok', params: { statusCode: response.statusCode } }, 'http-oauth2-request', t));
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
              node.status(localizedStatus('red', 'ring', { key: lost ? 'status.loginRequiredAnswerLost' : 'status.loginRequired' }, 'http-oauth2-request', t));
            } else {
              node.status(localizedStatus('red', 'ring', { key: 'status.failed', params: { code } }, 'http-oauth2-request', t));
            }
          }
          const error = translate(err);
          if (!settings.errorsToCatchOnly && isOAuth2Error(err) && REQUEST_FAILURES.has(err.code) && requestUrl !== undefined) {
            // The core node's contract: the message goes on with the failure as its status and payload (a flow
            // switching on msg.statusCode sees it), and Catch hears of it too.
            const out = msg as NodeMessage & { statusCode?: unknown };
            out.statusCode = failureStatusCode(err);
            out.payload = `${error.message} : ${requestUrl}`;
            node.error(error, out);
            send(out);
            done();
            return;
          }
          done(error);
        }
      })();
    });

    node.on('close', (_removed: boolean, closeDone: () => void) => {
      closing = true;
      for (const controller of running) controller.abort();
      connectionNode?.connection?.removeListener('state', onState);
      connectionNode?.removeListener('store-status', onStoreStatus);
      ownAgents?.destroy();
      uncheckedAgents?.destroy();
      node.status({});
      closeDone();
    });
  }

  RED.nodes.registerType('http-oauth2-request', HttpOAuth2RequestNode as (this: Node<never>, def: NodeDef) => void);
};
