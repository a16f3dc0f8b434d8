/**
 * Outbound proxies for every call a connection makes (discovery, login, token, device, revocation, API,
 * trigger): the agents of agents.ts open their sockets through here.
 *
 * Every proxied target, https or http, goes through a CONNECT tunnel: the proxy sees the host and port only,
 * never a request line, a header or a body, so it never sees a bearer token, a client secret or a refresh
 * token. Where the proxy comes from (first found): the connection's Node-RED `http proxy` config node (its URL,
 * its "no proxy" list and its credentials), else the environment as Node-RED's own http request node reads it
 * (for an https target `npm_config_https_proxy`, `https_proxy`, `npm_config_proxy`, `all_proxy`; for http the
 * same with `http`; `npm_config_no_proxy`, `no_proxy`; lowercase names before uppercase), shaped by the
 * `proxyOptions` of Node-RED's settings: `favourUpperCase`, `lowerCaseOnly`, `excludeNpm`, `env` (another
 * environment) and `mode: 'legacy'` (one `HTTP_PROXY`/`http_proxy` for both schemes, `NO_PROXY`/`no_proxy`),
 * also set by the `NR_PROXY_MODE` environment variable as in Node-RED.
 *
 * NO_PROXY entries: `*` (no proxy at all), a host name (itself and its subdomains; a leading `.` or `*.` means
 * the same), an IP address, each optionally with `:port`. Entries are compared case-insensitively.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

export interface ProxySettings {
  /** Proxy for https targets (an http:// or https:// URL of the proxy itself). */
  httpsProxy?: string;
  /** Proxy for http targets. */
  httpProxy?: string;
  /** Hosts reached directly. */
  noProxy: string[];
  /** Credentials for the proxy (Basic), from the config node; a URL's own user:password is used otherwise. */
  username?: string;
  password?: string;
}

/** Node-RED's `proxyOptions` setting (settings.js), as its http request node reads it. */
export interface EnvProxyOptions {
  mode?: 'strict' | 'legacy';
  favourUpperCase?: boolean;
  lowerCaseOnly?: boolean;
  excludeNpm?: boolean;
  env?: Record<string, string | undefined>;
}

let runtimeProxyOptions: EnvProxyOptions = {};

/**
 * Takes Node-RED's `proxyOptions` setting for every later environment lookup (called when the nodes register;
 * the setting is the runtime's, like the environment itself). Anything but an object means none.
 */
export function useProxyOptions(value: unknown): void {
  const o = value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  const env = o.env && typeof o.env === 'object' ? (o.env as Record<string, string | undefined>) : undefined;
  runtimeProxyOptions = {
    mode: o.mode === 'legacy' ? 'legacy' : o.mode === 'strict' ? 'strict' : undefined,
    favourUpperCase: o.favourUpperCase === true,
    lowerCaseOnly: o.lowerCaseOnly === true,
    excludeNpm: o.excludeNpm === true,
    env,
  };
}

/**
 * The environment's proxy settings, undefined when none is set: the variables Node-RED's http request node
 * reads, in its order, under `options` (by default the runtime's `proxyOptions`, see useProxyOptions).
 */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv = process.env, options: EnvProxyOptions = runtimeProxyOptions): ProxySettings | undefined {
  const vars = options.env ?? env;
  const modeOverride = vars.NR_PROXY_MODE ?? env.NR_PROXY_MODE;
  const mode = modeOverride === 'legacy' || modeOverride === 'strict' ? modeOverride : (options.mode ?? 'strict');
  if (mode === 'legacy') {
    const proxy = vars.HTTP_PROXY || vars.http_proxy || undefined;
    if (!proxy) return undefined;
    return { httpsProxy: proxy, httpProxy: proxy, noProxy: splitNoProxy(vars.NO_PROXY || vars.no_proxy || '') };
  }
  const get = (key: string): string => {
    if (options.excludeNpm && key.startsWith('npm_config_')) return '';
    if (options.lowerCaseOnly) return vars[key] || '';
    const upper = key.toUpperCase();
    return (options.favourUpperCase ? vars[upper] || vars[key] : vars[key] || vars[upper]) || '';
  };
  const forScheme = (scheme: 'https' | 'http'): string | undefined =>
    get(`npm_config_${scheme}_proxy`) || get(`${scheme}_proxy`) || get('npm_config_proxy') || get('all_proxy') || undefined;
  const httpsProxy = forScheme('https');
  const httpProxy = forScheme('http');
  if (!httpsProxy && !httpProxy) return undefined;
  return { httpsProxy, httpProxy, noProxy: splitNoProxy(get('npm_config_no_proxy') || get('no_proxy')) };
}

/**
 * A Node-RED `http proxy` config node's settings: one URL for both schemes. Any other node (an id typed into a
 * dialog's body may name one) is no proxy, whatever `url` it has.
 */
export function proxySettingsFromNode(node: { type?: unknown; url?: unknown; noproxy?: unknown; credentials?: { username?: unknown; password?: unknown } }): ProxySettings | undefined {
  if (node.type !== 'http proxy') return undefined;
  const url = typeof node.url === 'string' ? node.url.trim() : '';
  if (!url) return undefined;
  const noProxy = Array.isArray(node.noproxy) ? node.noproxy.filter((h): h is string => typeof h === 'string') : [];
  const username = typeof node.credentials?.username === 'string' && node.credentials.username ? node.credentials.username : undefined;
  const password = typeof node.credentials?.password === 'string' && node.credentials.password ? node.credentials.password : undefined;
  return { httpsProxy: url, httpProxy: url, noProxy: noProxy.flatMap(splitNoProxy), username, password };
}

function splitNoProxy(value: string): string[] {
  return value
    .split(/[\s,]+/)
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Whether NO_PROXY sends this host and port direct. */
export function bypassesProxy(hostname: string, port: number, noProxy: readonly string[]): boolean {
  const host = stripBrackets(hostname.toLowerCase()).replace(/\.$/, '');
  for (const raw of noProxy) {
    if (raw === '*') return true;
    let entry = raw;
    let entryPort: number | undefined;
    const portMatch = /^(.*[^:]):(\d+)$/.exec(entry);
    if (portMatch && !entry.startsWith('[') && entry.split(':').length === 2) {
      entry = portMatch[1]!;
      entryPort = Number(portMatch[2]);
    } else if (/^\[.*\]:\d+$/.test(entry)) {
      const at = entry.lastIndexOf(':');
      entryPort = Number(entry.slice(at + 1));
      entry = entry.slice(0, at);
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    entry = stripBrackets(entry).replace(/^\*?\./, '');
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The proxy URL for a target, or undefined to connect directly. */
export function proxyFor(target: { protocol: 'http:' | 'https:'; hostname: string; port: number }, settings: ProxySettings | undefined): URL | undefined {
  if (!settings) return undefined;
  const raw = target.protocol === 'https:' ? settings.httpsProxy : settings.httpProxy;
  if (!raw || bypassesProxy(target.hostname, target.port, settings.noProxy)) return undefined;
  try {
    const url = new URL(raw.includes('://') ? raw : `http://${raw}`);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** A proxy failure: says the proxy's host and status, never its credentials. */
export class ProxyError extends Error {
  readonly code = 'EPROXY';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ProxyError';
  }
}

/**
 * Opens a tunnel to `host:port` through `proxy` (HTTP CONNECT) and hands back the raw socket; TLS to the target,
 * if any, runs inside it. Credentials: the settings', else the proxy URL's own.
 */
export function openTunnel(
  proxy: URL,
  host: string,
  port: number,
  settings: ProxySettings,
  options: { timeoutMs?: number; proxyTls?: https.RequestOptions } = {},
  callback: (err: Error | null, socket?: Socket) => void,
): void {
  const username = settings.username ?? decodeURIComponent(proxy.username);
  const password = settings.password ?? decodeURIComponent(proxy.password);
  const authority = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: authority };
  if (username || password) headers['proxy-authorization'] = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const request = (proxy.protocol === 'https:' ? https : http).request({
    host: stripBrackets(proxy.hostname),
    port: Number(proxy.port) || (proxy.protocol === 'https:' ? 443 : 80),
    method: 'CONNECT',
    path: authority,
    headers,
    // A fresh socket per tunnel: the tunnel itself is then pooled by the caller's keep-alive agent.
    agent: false,
    ...(proxy.protocol === 'https:' ? options.proxyTls : {}),
  });
  let done = false;
  const finish = (err: Error | null, socket?: Socket): void => {
    if (done) return;
    done = true;
    callback(err, socket);
  };
  if (options.timeoutMs) {
    request.setTimeout(options.timeoutMs, () => {
      request.destroy();
      finish(new ProxyError(`The proxy ${proxy.host} did not open a tunnel in time`));
    });
  }
  request.once('connect', (response, socket) => {
    request.setTimeout(0);
    if (response.statusCode !== 200) {
      socket.destroy();
      finish(new ProxyError(`The proxy ${proxy.host} refused the tunnel to ${authority} (HTTP ${response.statusCode ?? 0})`, response.statusCode));
      return;
    }
    finish(null, socket);
  });
  request.once('error', (err: NodeJS.ErrnoException) => finish(new ProxyError(`The proxy ${proxy.host} cannot be reached (${err.code ?? 'error'})`)));
  request.end();
}
