import http from 'node:http';
import https from 'node:https';

/**
 * TLS options as Node-RED's tls-config node fills them (`addTLSOptions`), so the adapter can pass them through.
 */
export interface AgentTlsOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer | Array<string | Buffer>;
  key?: string | Buffer | Array<string | Buffer>;
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

/** An agent whose sockets are opened from options free of credentials (see withoutCredentials). */
class QuietHttpAgent extends http.Agent {
  addRequest(req: http.ClientRequest, options: http.RequestOptions): void {
    // addRequest is Node's (lib/_http_agent.js) but not in its type declarations.
    (http.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest.call(this, req, withoutCredentials(options));
  }
}

class QuietHttpsAgent extends https.Agent {
  addRequest(req: http.ClientRequest, options: https.RequestOptions): void {
    (https.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest.call(this, req, withoutCredentials(options));
  }
}

let shared: AgentPair | undefined;

/**
 * The agents for requests that belong to no deployed connection (a login, logout or device start from the
 * editor's dialog): keep-alive like Node's global agents, and as quiet about credentials as every other.
 */
export function sharedAgents(): AgentPair {
  shared ??= createAgents({});
  return shared;
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
  if (tls.passphrase !== undefined && tls.passphrase !== '') tlsOptions.passphrase = tls.passphrase;
  if (typeof tls.rejectUnauthorized === 'boolean') tlsOptions.rejectUnauthorized = tls.rejectUnauthorized;
  if (tls.servername) tlsOptions.servername = tls.servername;
  // ALPN is deliberately not passed: the pipeline speaks HTTP/1.1 only, and offering h2 could make a server
  // pick a protocol we cannot speak.

  const httpAgent = new QuietHttpAgent(common);
  const httpsAgent = new QuietHttpsAgent({ ...common, ...tlsOptions });
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
