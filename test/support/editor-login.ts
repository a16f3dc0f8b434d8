import { loginThroughProvider, type LoginOptions } from './auth-server';
import type { TestRuntime } from './runtime';

/** A browser's cookie jar for the runtime's admin origin (just what the login needs). */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** Presses "Log in" as the editor does: the guarded AJAX call that returns the provider's URL and sets the cookie. */
export async function startLogin(
  runtime: Pick<TestRuntime, 'admin'>,
  connectionId: string,
  config: Record<string, unknown>,
  jar: CookieJar,
  clientSecret?: string,
  token?: string | null,
): Promise<{ status: number; authorizeUrl?: string; error?: { code: string; message: string } }> {
  const res = await runtime.admin(`oauth2-connection/${connectionId}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: jar.header() },
    body: JSON.stringify({ config, clientSecret }),
    token,
  });
  jar.store(res);
  const body = (await res.json().catch(() => ({}))) as { authorizeUrl?: string; error?: { code: string; message: string } };
  return { status: res.status, ...body };
}

/** The provider's redirect arriving at the runtime's callback in the browser that holds `jar`. */
export async function openCallback(callbackUrl: URL | string, jar: CookieJar): Promise<{ status: number; html: string }> {
  const res = await fetch(callbackUrl, { headers: { cookie: jar.header() }, redirect: 'manual' });
  return { status: res.status, html: await res.text() };
}

/** The whole editor login: Log in, the provider's login and consent pages, the callback. */
export async function loginFromEditor(
  runtime: Pick<TestRuntime, 'admin'>,
  connectionId: string,
  config: Record<string, unknown>,
  clientSecret?: string,
  opts: LoginOptions = {},
): Promise<{ status: number; html: string }> {
  const jar = new CookieJar();
  const started = await startLogin(runtime, connectionId, config, jar, clientSecret);
  if (!started.authorizeUrl) throw new Error(`login did not start: ${started.status} ${JSON.stringify(started.error)}`);
  const callback = await loginThroughProvider(started.authorizeUrl, opts);
  return openCallback(callback, jar);
}
