import { OAuth2Error, isOAuth2Error } from './lib/errors';
import { HoldQueue, holdReason, type HeldMessage, type HoldReason } from './lib/hold/hold-queue';
import { decodeMessage, encodeMessage } from './lib/hold/message-codec';
import { createAgents, type AgentTlsOptions } from './lib/http/agents';
import { proxySettingsFromEnv, useProxyOptions } from './lib/http/proxy';
import { collectPages } from './lib/http/pagination';
import { sendAuthorised, type AuthorisedRequest, type AuthorisedResponse, type SendDeps } from './lib/http/request';
import { httpStatusError } from './lib/http/status';
import { messageRequest, parseRequestSettings, responseFields, type RequestNodeConfig } from './lib/request-settings';
import type { ConnectionState } from './lib/tokens/token-manager';
import type { ConnectionNode } from './node-red/connection-node';
import { configuredIds, registerDeploySweep } from './node-red/deploy-sweep';
import { heldStoreSelector, sweepRemovedHolders } from './node-red/held-stores';
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

/** A held message as this process received it: the original and its callbacks. */
interface LocalMessage {
  msg: NodeMessage;
  send: (msg: NodeMessage) => void;
  done: (err?: Error) => void;
}

export = function register(RED: NodeAPI): void {
  useProxyOptions(runtimeSetting(RED, 'proxyOptions'));
  // Held messages (file in the user directory, or Redis as settings.js says); a removed node's are forgotten.
  const heldStore = heldStoreSelector(RED);
  const removedHolders = new Set<string>();
  registerDeploySweep('http-oauth2-request', RED, async () => {
    const store = heldStore();
    if (store.kind === 'invalid') return;
    await sweepRemovedHolders(store, configuredIds(RED, 'http-oauth2-request'), removedHolders);
  });
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
    /** Messages held while the connection needs a login (made below, once the node can send). */
    let queue: HoldQueue<LocalMessage> | undefined;
    let holdRelease: (() => void) | undefined;
    let connectionState: ConnectionState | undefined;

    const t = (key: string, params?: Record<string, unknown>): string => RED._(`http-oauth2-request.${key}`, params);
    // Engine errors are translated by the connection's catalog, which holds every error code's text.
    const translate = (err: unknown): Error =>
      connectionNode ? connectionNode.toNodeError(err) : toNodeError(err, (key, params) => t(key, params));

    function configErrorStatus(err: OAuth2Error): NodeStatus {
      return localizedStatus('red', 'ring', { key: 'status.failed', params: { code: err.code } }, 'http-oauth2-request', t);
    }

    function showConnectionState(): boolean {
      if (queue && queue.size > 0) {
        const reason: HoldReason = queue.reason ?? 'loginRequired';
        node.status(localizedStatus('yellow', 'ring', { key: reason === 'unavailable' ? 'status.holdingUnavailable' : 'status.holdingLogin', params: { count: queue.size } }, 'http-oauth2-request', t));
        return true;
      }
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
      // A new login (or the token endpoint back): what is held goes out now.
      if (state.kind === 'ready' && (settings.hold || (queue?.size ?? 0) > 0)) queue?.wake();
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

    /**
     * One message's request. `mayHold`: a failure it may be held for (a login needed, the token endpoint away,
     * nothing of it sent on yet) is returned instead of raised, and the caller holds the message.
     */
    async function run(msg: NodeMessage, send: (msg: NodeMessage) => void, done: (err?: Error) => void, mayHold: boolean): Promise<OAuth2Error | undefined> {
      let requestUrl: string | undefined;
      if (!connectionNode?.connection) {
        // A connection that failed its configuration says why, with its code; none at all is a node error.
        done(connectionNode?.configError ?? toNodeError(new Error(t('errors.noConnection')), () => ''));
        return undefined;
      }
      const connection = connectionNode.connection;
      let sentAny = false;
      const sendOn = (out: NodeMessage): void => {
        sentAny = true;
        send(out);
      };
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
          const failure = await paginate(msg, request, deps, sendOn);
          done(failure && !closing ? translate(failure) : undefined);
          return undefined;
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
          return undefined;
        }
        if (!showConnectionState()) {
          node.status(inFlight > 0
            ? localizedStatus('blue', 'dot', { key: 'status.inFlight', params: { count: inFlight } }, 'http-oauth2-request', t)
            : localizedStatus(ok ? 'green' : 'yellow', 'dot', { key: 'status.ok', params: { statusCode: response.statusCode } }, 'http-oauth2-request', t));
        }
        send(msg);
        done();
        return undefined;
      } catch (err) {
        inFlight -= 1;
        if (closing && pagination.kind !== 'none') {
          // Stopped between pages because the node is closing (redeploy): not an error of the flow.
          done();
          return undefined;
        }
        if (mayHold && !sentAny && isOAuth2Error(err) && holdReason(err)) return err;
        fail(msg, send, done, err, requestUrl);
        return undefined;
      }
    }

    /** A message's failure: to Catch, and on the output too for failed requests (the core node's contract). */
    function fail(msg: NodeMessage, send: (msg: NodeMessage) => void, done: (err?: Error) => void, err: unknown, requestUrl: string | undefined): void {
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

    /** Holds a message that failed for a login needed (or arrived while others are held); else fails it. */
    async function holdOrFail(id: string, local: LocalMessage, error: OAuth2Error): Promise<void> {
      if (!queue) {
        fail(local.msg, local.send, local.done, error, undefined);
        return;
      }
      let text: string;
      try {
        text = encodeMessage(local.msg as unknown as Record<string, unknown>);
      } catch {
        fail(local.msg, local.send, local.done, error, undefined);
        return;
      }
      const outcome = await queue.hold(id, text, local, error);
      if (outcome === 'held') {
        showConnectionState();
        // Usable again meanwhile (a login that finished while this request failed): send now.
        if (connectionNode?.connection?.state().kind === 'ready') queue.wake();
        return;
      }
      if (outcome === 'storeFailed') node.warn(t('errors.holdStoreFailed'));
      fail(local.msg, local.send, local.done, error, undefined);
    }

    /** The error a message arriving behind held ones would fail with, were it not held too. */
    function heldError(): OAuth2Error {
      return new OAuth2Error('OAUTH2_LOGIN_REQUIRED', 'Messages are held until the connection is logged in again', { params: { reason: 'held' } });
    }

    node.on('input', (msg, send, done) => {
      const local: LocalMessage = { msg, send, done };
      if (!settings.hold || !queue) {
        void run(msg, send, done, false);
        return;
      }
      const id = queue.arrival();
      if (queue.holding()) {
        // Behind the held ones, in arrival order.
        void holdOrFail(id, local, queue.error ?? heldError());
        return;
      }
      void run(msg, send, done, true).then((error) => (error ? holdOrFail(id, local, error) : undefined));
    });

    if (connectionNode?.connection) {
      try {
        const attached = heldStore().attach();
        queue = new HoldQueue<LocalMessage>({
          nodeId: node.id,
          store: attached.store,
          settings: settings.hold,
          // Longer than a request with its retries can take: another instance never sends it meanwhile.
          claimMs: settings.timeoutMs * settings.retry.maxAttempts + 5 * 60_000,
          attempt: async (entry: HeldMessage<LocalMessage>) => {
            let local = entry.local;
            if (!local) {
              let msg: NodeMessage;
              try {
                msg = decodeMessage(entry.message) as NodeMessage;
              } catch {
                node.warn(t('errors.heldUnreadable'));
                return undefined;
              }
              // Held before a restart or redeploy: sent on as a message of this node, errors to Catch.
              local = { msg, send: (out) => node.send(out), done: (err) => (err ? node.error(err, msg) : undefined) };
            }
            return run(local.msg, local.send, local.done, settings.hold !== undefined);
          },
          expire: (entry, error) => {
            const local = entry.local;
            if (local) {
              fail(local.msg, local.send, local.done, error, undefined);
              return;
            }
            try {
              const msg = decodeMessage(entry.message) as NodeMessage;
              fail(msg, (out) => node.send(out), (err) => (err ? node.error(err, msg) : undefined), error, undefined);
            } catch {
              node.warn(t('errors.heldUnreadable'));
            }
          },
          dropped: (entry) => entry.local?.done(),
          onChange: () => {
            if (!showConnectionState() && inFlight === 0) node.status(paginationError ? configErrorStatus(paginationError) : {});
          },
          // Without holding, only a failure to send what an earlier configuration held would matter here.
          onStoreError: (err, doing) => {
            if (settings.hold || doing !== 'restore') node.warn(translate(err).message);
          },
        });
        holdRelease = attached.release;
        void queue.restore();
      } catch (err) {
        // The store setting is invalid (httpOAuth2.store): nothing can be held; messages fail as before.
        if (settings.hold) node.warn(translate(err).message);
      }
    }

    node.on('close', (removed: boolean, closeDone: () => void) => {
      closing = true;
      if (removed) removedHolders.add(node.id);
      for (const controller of running) controller.abort();
      connectionNode?.connection?.removeListener('state', onState);
      connectionNode?.removeListener('store-status', onStoreStatus);
      // The message being sent from the hold finishes first: the next node must not send it again.
      // At most 12 s: Node-RED gives a closing node 15 s.
      const closed = Promise.race([queue?.close() ?? Promise.resolve(), new Promise<void>((resolve) => setTimeout(resolve, 12_000).unref())]);
      void closed.finally(() => {
        holdRelease?.();
        ownAgents?.destroy();
        uncheckedAgents?.destroy();
        node.status({});
        closeDone();
      });
    });
  }

  RED.nodes.registerType('http-oauth2-request', HttpOAuth2RequestNode as (this: Node<never>, def: NodeDef) => void);
};
