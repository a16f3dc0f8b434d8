import type { ConnectionState } from './lib/tokens/token-manager';
import type { ConnectionNode } from './node-red/connection-node';
import { localizedStatus, publishStatusEntries } from './node-red/status-text';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatusFill } from './node-red/types';

interface ConnectionStatusNodeDef extends NodeDef {
  connection?: string;
  /** Also send `refreshing` and the `ready` after a routine refresh of a healthy connection. */
  routineRefreshes?: boolean;
  /** Send the connection's state once at start (after deploy or restart). */
  sendAtStart?: boolean;
  /**
   * Days before the refresh token's end (when the provider says it) to send `refresh-expiring`; empty: 7,
   * 0: never.
   */
  refreshExpiryDays?: string | number;
}

/** What the node says: the connection's state kinds, a store that is away, `recovered`, and `refresh-expiring`. */
type ReportedState = ConnectionState['kind'] | 'recovered' | 'refresh-expiring';

/** The connection's health as the flow sees it: a kind plus the codes that explain it, never an error object. */
interface Health {
  kind: ConnectionState['kind'];
  code?: string;
  reason?: string;
  retryAt?: number;
  /** The state's error, kept only to translate its text (payload.message); never sent. */
  error?: Parameters<ConnectionNode['toNodeError']>[0];
}

interface ConnectionStatusPayload {
  state: ReportedState;
  previous: ConnectionState['kind'] | null;
  reason?: string;
  code?: string;
  message?: string;
  connection: string;
  connectionId: string;
  time: string;
  retryAt?: string;
  /** With refresh-expiring: when the refresh token stops working (a new login is needed by then). */
  expiresAt?: string;
}

/** The longest a Node.js timer can wait (about 24.8 days): longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DAY_MS = 24 * 60 * 60 * 1000;

/** States after which a `ready` is news: the connection got better. */
const TROUBLE: ReadonlySet<ConnectionState['kind']> = new Set(['login-required', 'unavailable', 'refused']);

/** How long the node waits for its connection to load its tokens before it takes the state as it is. */
const START_WAIT_MS = 5_000;
/** Flows are not running while their nodes are being built: the first message waits a moment, as inject's does. */
const START_DELAY_MS = 100;

function asText(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The connection's state, with the shared store's health folded in (a store away is `unavailable`). */
function healthOf(state: ConnectionState, storeUnavailable: boolean): Health {
  if (storeUnavailable && state.kind !== 'login-required') return { kind: 'unavailable', code: 'OAUTH2_TOKEN_STORE_FAILED', reason: 'storeUnavailable' };
  switch (state.kind) {
    case 'login-required': {
      // The manager's reason codes (refreshAnswerLost, renewerStopped, refreshRefused, providerChanged...).
      const reason = asText(state.error?.params.reason) ?? asText(state.error?.oauthError);
      return { kind: state.kind, code: state.code, ...(reason ? { reason } : {}), ...(state.error ? { error: state.error } : {}) };
    }
    case 'unavailable': {
      const reason = asText(state.error.params.reason);
      return { kind: state.kind, code: state.error.code, ...(reason ? { reason } : {}), error: state.error };
    }
    case 'refused': {
      const reason = asText(state.error.oauthError) ?? asText(state.error.params.reason);
      return { kind: state.kind, code: state.error.code, ...(reason ? { reason } : {}), retryAt: state.retryAt, error: state.error };
    }
    default:
      return { kind: state.kind };
  }
}

/**
 * The same state for a flow: the same kind and code. A retry that fails for another reason (connection refused,
 * then a 503) or a refusal's moving retry time is not news: a flow that emails on a state would email again.
 */
function sameHealth(a: Health, b: Health): boolean {
  return a.kind === b.kind && a.code === b.code;
}

const STATUS: Record<ConnectionState['kind'], { fill: NodeStatusFill; shape: 'ring' | 'dot' }> = {
  ready: { fill: 'green', shape: 'dot' },
  refreshing: { fill: 'blue', shape: 'dot' },
  'login-required': { fill: 'red', shape: 'ring' },
  unavailable: { fill: 'yellow', shape: 'ring' },
  refused: { fill: 'red', shape: 'ring' },
  'logged-out': { fill: 'grey', shape: 'ring' },
};

const STATUS_KEY: Record<ConnectionState['kind'], string> = {
  ready: 'status.ready',
  refreshing: 'status.refreshing',
  'login-required': 'status.loginRequired',
  unavailable: 'status.unavailable',
  refused: 'status.refused',
  'logged-out': 'status.loggedOut',
};

export = function register(RED: NodeAPI): void {
  function ConnectionStatusNode(this: Node<never>, def: ConnectionStatusNodeDef): void {
    RED.nodes.createNode(this, def);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- Node-RED constructors are called with `this`
    const node = this;
    publishStatusEntries(RED as unknown as Parameters<typeof publishStatusEntries>[0], node);
    const t = (key: string, params?: Record<string, unknown>): string => RED._(`oauth2-connection-status.${key}`, params);
    const connectionNode = def.connection ? (RED.nodes.getNode(def.connection) as ConnectionNode | null) : null;
    const connection = connectionNode?.connection;
    if (!connectionNode || !connection) {
      const key = connectionNode?.configError ? 'status.connectionInvalid' : 'status.noConnection';
      node.status(localizedStatus('red', 'ring', { key }, 'oauth2-connection-status', t));
      return;
    }
    const routine = def.routineRefreshes === true;
    const daysText = def.refreshExpiryDays === undefined || def.refreshExpiryDays === '' ? '7' : String(def.refreshExpiryDays);
    const warnMs = Number.isFinite(Number(daysText)) && Number(daysText) > 0 ? Number(daysText) * DAY_MS : 0;
    /** The refresh token end already said (said once per end: a new login with a later end is said again). */
    let warnedFor: number | undefined;
    let expiryTimer: NodeJS.Timeout | undefined;

    /** The connection's health as last seen (refreshes of a healthy connection hidden unless asked for). */
    let seen = healthOf(connection.state(), connectionNode.storeUnavailable === true);
    /** The last health that was not a refresh: whether a `ready` is a recovery, and what a repeat is. */
    let settled: Health = seen;
    let lastSent: Health | undefined;
    let live = false;
    let closed = false;

    function showStatus(health: Health): void {
      const key = health.code === 'OAUTH2_TOKEN_STORE_FAILED' ? 'status.storeUnavailable' : STATUS_KEY[health.kind];
      node.status(localizedStatus(STATUS[health.kind].fill, STATUS[health.kind].shape, { key }, 'oauth2-connection-status', t));
    }

    function send(state: ReportedState, health: Health, previous: Health | undefined): void {
      const payload: ConnectionStatusPayload = {
        state,
        previous: previous?.kind ?? null,
        ...(health.reason ? { reason: health.reason } : {}),
        ...(health.code ? { code: health.code } : {}),
        connection: connectionNode?.name || def.connection || '',
        connectionId: def.connection ?? '',
        time: new Date().toISOString(),
        ...(health.retryAt !== undefined ? { retryAt: new Date(health.retryAt).toISOString() } : {}),
      };
      if (health.error !== undefined && connectionNode) {
        // The connection's catalog holds every error code's text (in the server's language); the text names
        // no token or secret, and the error object itself stays here.
        payload.message = connectionNode.toNodeError(health.error).message;
      }
      lastSent = health;
      const msg: NodeMessage = { topic: state, payload };
      node.send(msg);
    }

    function observe(next: Health): void {
      const before = seen;
      seen = next;
      showStatus(next);
      if (!live) {
        settled = next.kind === 'refreshing' ? settled : next;
        return;
      }
      if (next.kind === 'refreshing') {
        // A refresh is routine for a healthy connection: said only when asked for.
        if (routine && !(lastSent && sameHealth(lastSent, next))) send('refreshing', next, before);
        return;
      }
      const previous = settled;
      settled = next;
      if (next.kind === 'ready' && TROUBLE.has(previous.kind)) {
        send('recovered', next, previous);
        return;
      }
      if (next.kind === 'ready' && previous.kind === 'ready') {
        // The end of a routine refresh: sent only with routine refreshes on, and only after a `refreshing`.
        if (routine && before.kind === 'refreshing') send('ready', next, before);
        return;
      }
      if (sameHealth(previous, next)) return;
      send(next.kind, next, previous);
    }

    /** Sends refresh-expiring when the refresh token's end is within the warning time; else waits for it. */
    function checkRefreshExpiry(): void {
      if (expiryTimer) clearTimeout(expiryTimer);
      expiryTimer = undefined;
      if (closed || !live || warnMs === 0 || !connection) return;
      const snapshot = connection.snapshot();
      const end = snapshot.hasRefreshToken ? snapshot.refreshExpiresAt : undefined;
      if (end === undefined || end === warnedFor) return;
      const wait = end - warnMs - Date.now();
      if (wait <= 0) {
        warnedFor = end;
        const health = healthOf(connection.state(), connectionNode?.storeUnavailable === true);
        const payload: ConnectionStatusPayload = {
          state: 'refresh-expiring',
          previous: health.kind,
          connection: connectionNode?.name || def.connection || '',
          connectionId: def.connection ?? '',
          time: new Date().toISOString(),
          expiresAt: new Date(end).toISOString(),
        };
        node.send({ topic: 'refresh-expiring', payload });
        return;
      }
      expiryTimer = setTimeout(checkRefreshExpiry, Math.min(wait + 10, MAX_TIMER_MS));
      expiryTimer.unref?.();
    }

    const onState = (state: ConnectionState): void => {
      observe(healthOf(state, connectionNode.storeUnavailable === true));
      // New tokens (a refresh, a login) may bring a new end for the refresh token.
      checkRefreshExpiry();
    };
    const onStoreStatus = (): void => {
      observe(healthOf(connection.state(), connectionNode.storeUnavailable === true));
    };
    connection.on('state', onState);
    connectionNode.on('store-status', onStoreStatus);
    showStatus(seen);

    // The state the connection starts in (its stored tokens loaded) is not a change: it is sent only when asked.
    let startTimer: NodeJS.Timeout | undefined;
    void connection.whenStarted(START_WAIT_MS).then(() => {
      if (closed) return;
      startTimer = setTimeout(() => {
        startTimer = undefined;
        if (closed) return;
        live = true;
        if (def.sendAtStart === true) send(seen.kind === 'refreshing' ? settled.kind : seen.kind, seen.kind === 'refreshing' ? settled : seen, undefined);
        checkRefreshExpiry();
      }, START_DELAY_MS);
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      if (startTimer) clearTimeout(startTimer);
      if (expiryTimer) clearTimeout(expiryTimer);
      connection.removeListener('state', onState);
      connectionNode.removeListener('store-status', onStoreStatus);
      node.status({});
      done();
    });
  }

  RED.nodes.registerType('oauth2-connection-status', ConnectionStatusNode as (this: Node<never>, def: NodeDef) => void);
};
