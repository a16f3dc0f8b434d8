/**
 * The call a connection makes once after each login when its provider names the tenant or site in an API answer
 * rather than in the token response (Xero's connections, Atlassian's accessible resources): a GET with the new
 * access token, to an origin the connection allows (invariant 4: the token goes nowhere else), whose answer's
 * first list item gives one connection value.
 */
import { OriginAllowlist } from '../http/origin';
import { agentFetch } from '../http/agent-fetch';
import type { AgentPair } from '../http/agents';
import { OAuth2Error } from '../errors';
import { valueApiBaseUrl, type PostLoginLookup, type ProviderBehaviour } from '../connection-values';
import type { TokenSet } from '../types';

const MAX_ANSWER_BYTES = 1024 * 1024;

function lookupFailed(host: string, answer: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_PROVIDER_ERROR', `The lookup after login at ${host} failed (${answer}); the login was not used`, {
    params: { error: 'lookup_failed', description: answer, host, answer, messageKey: 'values.lookupFailed' },
  });
}

/** The answer's text, read no further than `max` bytes: undefined when it is longer (the rest is not read). */
async function cappedText(response: Response, max: number): Promise<string | undefined> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The first item of the answer's list: the answer itself, or the one list-valued field of an object. */
function firstItem(answer: unknown): Record<string, unknown> | undefined {
  let list: unknown = answer;
  if (!Array.isArray(list) && typeof list === 'object' && list !== null) {
    const arrays = Object.values(list as Record<string, unknown>).filter(Array.isArray);
    list = arrays.length === 1 ? arrays[0] : undefined;
  }
  const item: unknown = Array.isArray(list) ? list[0] : undefined;
  return typeof item === 'object' && item !== null && !Array.isArray(item) ? (item as Record<string, unknown>) : undefined;
}

/**
 * Runs the lookup for freshly obtained `tokens` and returns them with the value added. The URL must be on an
 * allowed origin: the API base URL (the configured one, or the one the token response set) or an allowed origin.
 * The value is an id (letters, digits, `_ . : -`): it goes into URLs and headers.
 */
export async function runPostLoginLookup(input: {
  lookup: PostLoginLookup;
  behaviour: ProviderBehaviour;
  tokens: TokenSet;
  apiBaseUrl: string | undefined;
  allowedOrigins: readonly string[];
  agents: Pick<AgentPair, 'http' | 'https'>;
  timeoutMs: number;
}): Promise<TokenSet> {
  const { lookup, tokens } = input;
  const url = new URL(lookup.url);
  const allowlist = new OriginAllowlist(valueApiBaseUrl(input.behaviour, tokens) ?? input.apiBaseUrl, input.allowedOrigins);
  if (!allowlist.allows(url)) {
    throw new OAuth2Error('OAUTH2_ORIGIN_NOT_ALLOWED', `The origin ${url.origin} of the lookup after login is not allowed for this connection; nothing was sent`, {
      params: { origin: url.origin },
    });
  }
  let status: number;
  let text: string | undefined;
  try {
    const response = await agentFetch(input.agents)(url.href, {
      headers: { authorization: `Bearer ${tokens.accessToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(input.timeoutMs),
    });
    status = response.status;
    text = await cappedText(response, MAX_ANSWER_BYTES);
  } catch (err) {
    // Only the kind of failure leaves: the error of a request can hold its headers.
    const name = err instanceof Error ? err.name : 'Error';
    throw lookupFailed(url.host, name === 'TimeoutError' ? 'timeout' : 'network error');
  }
  if (status < 200 || status >= 300) throw lookupFailed(url.host, `HTTP ${status}`);
  if (text === undefined) throw lookupFailed(url.host, 'answer too large');
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    throw lookupFailed(url.host, `HTTP ${status}, not JSON`);
  }
  const raw = firstItem(answer)?.[lookup.pick];
  const value = typeof raw === 'string' ? raw : typeof raw === 'number' ? String(raw) : '';
  if (!/^[\w.:-]{1,200}$/.test(value)) throw lookupFailed(url.host, `no ${lookup.pick} in the answer`);
  return { ...tokens, values: { ...tokens.values, [lookup.as]: value } };
}
