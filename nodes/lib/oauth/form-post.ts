/**
 * Our own form POSTs to OAuth endpoints that simple-oauth2 does not cover (device authorization, device token
 * polling, RFC 7009 revocation), with RFC 6749 section 2.3 client authentication. Returns the response status
 * and parsed JSON body, or a transport failure; never an error object that still references the request
 * (axios errors carry the request headers, Authorization included).
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import axios from 'axios';
import { sharedAgents } from '../http/agents';
import type { ClientSettings } from '../types';
import type { EndpointFailure } from './error-mapping';

export interface TransportOptions {
  timeoutMs: number;
  httpAgent?: HttpAgent;
  httpsAgent?: HttpsAgent;
}

export type FormPostResult = { kind: 'response'; status: number; body: unknown } | Exclude<EndpointFailure, { kind: 'http' }>;

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** RFC 6749 2.3.1: the id and secret are form-urlencoded before going into the Basic header. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/** Adds client authentication as the client's method says. `none` sends client_id only (public clients). */
export function applyClientAuth(client: ClientSettings, form: URLSearchParams, headers: Record<string, string>): void {
  switch (client.authMethod) {
    case 'client_secret_basic':
      headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret ?? '')}`).toString('base64')}`;
      return;
    case 'client_secret_post':
      form.set('client_id', client.clientId);
      form.set('client_secret', client.clientSecret ?? '');
      return;
    case 'none':
      form.set('client_id', client.clientId);
      return;
  }
}

function parseJson(text: unknown): unknown {
  if (typeof text !== 'string' || text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export async function postForm(url: string, form: URLSearchParams, client: ClientSettings, transport: TransportOptions): Promise<FormPostResult> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  applyClientAuth(client, form, headers);
  return sendToEndpoint(url, { method: 'POST', headers, body: form.toString() }, transport);
}

/**
 * One request to an OAuth endpoint, any method and body (revocation styles beyond RFC 7009 use JSON bodies,
 * DELETE, or the token as bearer). The caller sets the authentication headers.
 */
export async function sendToEndpoint(
  url: string,
  request: { method: 'POST' | 'DELETE'; headers: Record<string, string>; body?: string },
  transport: TransportOptions,
): Promise<FormPostResult> {
  try {
    const response = await axios.request<string>({
      url,
      method: request.method,
      data: request.body,
      headers: { accept: 'application/json', ...request.headers },
      timeout: transport.timeoutMs,
      httpAgent: transport.httpAgent ?? sharedAgents().http,
      httpsAgent: transport.httpsAgent ?? sharedAgents().https,
      // The agents decide about proxies and TLS, as for every other request of the connection.
      proxy: false,
      // A token endpoint never legitimately redirects; following one would resend credentials elsewhere.
      maxRedirects: 0,
      maxContentLength: MAX_RESPONSE_BYTES,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      validateStatus: () => true,
    });
    return { kind: 'response', status: response.status, body: parseJson(response.data) };
  } catch (err) {
    // Only the error code leaves this function: the error object itself holds the request config.
    const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : undefined;
    if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') return { kind: 'timeout' };
    return { kind: 'network', code };
  }
}
