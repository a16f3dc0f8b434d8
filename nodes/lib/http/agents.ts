import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { openTunnel, proxyFor, proxySettingsFromEnv, type ProxySettings } from './proxy';

/**
 * TLS options as Node-RED's tls-config node fills them (`addTLSOptions`), so the adapter can pass them through.
 */
export interface AgentTlsOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer | Array<string | Buffer>;
  key?: string | Buffer | Array<string | Buffer>;
  /** A PKCS#12 bundle (certificate and key), as a tls-config of Node-RED 5 gives it. */
  pfx?: string | Buffer | Array<string | Buffer>;
  passphrase?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface AgentOptions {
  tls?: AgentTlsOptions;
  /** Sockets per origin; default unbounded as Node's own. */
  maxSockets?: number;
  /** Idle sockets kept per origin. */
  maxFreeSockets?: number;
  /** Outbound proxy (proxy.ts): targets it applies to are reached through a CONNECT tunnel. */
  proxy?: ProxySettings;
}

export interface AgentPair {
  http: http.Agent;
  https: https.Agent;
  /** Closes every pooled socket; call when the connection node closes. */
  destroy(): void;
}

/**
 * The request options a socket needs, without the ones that carry credentials. Node's agent writes the options
 * it is given to its debug output (`NODE_DEBUG=http` prints "createConnection <name> <options>"), headers
 * and `auth` included, so the Authorization header (a bearer token, a Basic client secret) would reach stderr.
 * The headers are already on the request by now (Node sets Authorization from `auth` before asking the
 * agent), and the agent names and opens sockets from host, port and TLS options only.
 */
function withoutCredentials<T extends object>(options: T): Omit<T, 'headers' | 'auth'> {
  const { headers: _headers, auth: _auth, ...rest } = options as T & { headers?: unknown; auth?: unknown };
  return rest;
}

type AddRequest = (req: http.ClientRequest, options: http.RequestOptions) => void;
type ConnectionCallback = (err: Error | null, stream: Duplex) => void;
type ConnectionOptions = http.ClientRequestArgs & tls.ConnectionOptions;
type CreateConnection = (options: ConnectionOptions, callback?: ConnectionCallback) => Duplex | null | undefined;

/**
 * Opens a socket to the target, through the proxy when one applies (a CONNECT tunnel, then TLS inside it for
 * https), else as Node's agent does. Node's agent accepts a socket handed to the callback later.
 */
function connectVia(
  proxy: ProxySettings | undefined,
  protocol: 'http:' | 'https:',
  direct: CreateConnection,
  options: ConnectionOptions,
  callback: ConnectionCallback | undefined,
): Duplex | null | undefined {
  const host = String(options.host ?? options.hostname ?? 'localhost');
  const port = Number(options.port) || (protocol === 'https:' ? 443 : 80);
  const via = proxyFor({ protocol, hostname: host, port }, proxy);
  if (!via || !proxy || !callback) return direct(options, callback);
  openTunnel(via, host, port, proxy, { timeoutMs: options.timeout }, (err, socket) => {
    // Node's agent reads only the error when there is one.
    if (err || !socket) return callback(err ?? new Error('no tunnel'), undefined as unknown as Duplex);
    if (protocol === 'http:') return callback(null, socket);
    callback(null, tls.connect({ ...options, socket }));
  });
  return undefined;
}

/** An agent whose sockets are opened from options free of credentials (see withoutCredentials). */
class QuietHttpAgent extends http.Agent {
  constructor(
    options: http.AgentOptions,
    private readonly proxy?: ProxySettings,
  ) {
    super(options);
  }

  addRequest(req: http.ClientRequest, options: http.RequestOptions): void {
    // addRequest is Node's (lib/_http_agent.js) but not in its type declarations.
    (http.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest.call(this, req, withoutCredentials(options));
  }

  override createConnection(options: ConnectionOptions, callback?: ConnectionCallback): Duplex | null | undefined {
    // createConnection is Node's too; without a proxy it stays exactly Node's.
    const direct = (http.Agent.prototype as unknown as { createConnection: CreateConnection }).createConnection.bind(this);
    return connectVia(this.proxy, 'http:', direct, options, callback);
  }
}

class QuietHttpsAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly proxy?: ProxySettings,
  ) {
    super(options);
  }

  addRequest(req: http.ClientRequest, options: https.RequestOptions): void {
    (https.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest.call(this, req, withoutCredentials(options));
  }

  override createConnection(options: ConnectionOptions, callback?: ConnectionCallback): Duplex | null | undefined {
    const direct = (https.Agent.prototype as unknown as { createConnection: CreateConnection }).createConnection.bind(this);
    return connectVia(this.proxy, 'https:', direct, options, callback);
  }
}

const shared = new Map<string, AgentPair>();

/**
 * The agents for requests that belong to no deployed connection (a login, logout or device start from the
 * editor's dialog): keep-alive like Node's global agents, and as quiet about credentials as every other.
 */
export function sharedAgents(proxy?: ProxySettings): AgentPair {
  // One pair per proxy: a dialog naming an `http proxy` node gets that proxy; none, the environment's.
  const effective = proxy ?? proxySettingsFromEnv();
  const key = effective ? JSON.stringify([effective.httpsProxy, effective.httpProxy, effective.noProxy, effective.username, effective.password]) : '';
  let pair = shared.get(key);
  if (!pair) {
    pair = createAgents({ proxy: effective });
    shared.set(key, pair);
  }
  return pair;
}

/** One keep-alive agent pair per connection: requests through the same connection reuse sockets. */
export function createAgents(options: AgentOptions): AgentPair {
  const common: http.AgentOptions = {
    keepAlive: true,
    // Most recently used socket first: the least likely to have been closed by the server while idle.
    scheduling: 'lifo',
    ...(options.maxSockets !== undefined ? { maxSockets: options.maxSockets } : {}),
    ...(options.maxFreeSockets !== undefined ? { maxFreeSockets: options.maxFreeSockets } : {}),
  };
  const tls = options.tls ?? {};
  const tlsOptions: https.AgentOptions = {};
  if (tls.ca !== undefined) tlsOptions.ca = tls.ca;
  if (tls.cert !== undefined) tlsOptions.cert = tls.cert;
  if (tls.key !== undefined) tlsOptions.key = tls.key;
  if (tls.pfx !== undefined) tlsOptions.pfx = tls.pfx;
  if (tls.passphrase !== undefined && tls.passphrase !== '') tlsOptions.passphrase = tls.passphrase;
  if (typeof tls.rejectUnauthorized === 'boolean') tlsOptions.rejectUnauthorized = tls.rejectUnauthorized;
  if (tls.servername) tlsOptions.servername = tls.servername;
  // ALPN is deliberately not passed: the pipeline speaks HTTP/1.1 only, and offering h2 could make a server
  // pick a protocol we cannot speak.

  const httpAgent = new QuietHttpAgent(common, options.proxy);
  const httpsAgent = new QuietHttpsAgent({ ...common, ...tlsOptions }, options.proxy);
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
