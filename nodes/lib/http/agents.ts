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

  const httpAgent = new http.Agent(common);
  const httpsAgent = new https.Agent({ ...common, ...tlsOptions });
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
