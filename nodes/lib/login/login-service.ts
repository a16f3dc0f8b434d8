import { metadataResolver } from '../connection';
import { resolvedCredentialTarget, type ConnectionSettings } from '../connection-settings';
import { OAuth2Error } from '../errors';
import { buildAuthorizeUrl } from '../oauth/authorize-url';
import { validateCallback } from '../oauth/callback';
import { checkTenantIssuer } from '../oauth/tenant-issuer';
import { createPkcePair, randomToken } from '../oauth/pkce';
import { sharedAgents } from '../http/agents';
import { createTokenEndpointClient } from '../oauth/simple-oauth2-client';
import type { TokenEndpointClient } from '../oauth/token-endpoint';
import type { ProviderMetadata, TokenSet } from '../types';
import { pickValues } from '../connection-values';
import { ExpiringMap } from './expiring-map';
import { runPostLoginLookup } from './post-login-lookup';
import { LoginTransactionStore } from './transactions';

/** A login that failed after its transaction was found: says which connection it was for. */
export class LoginFailure extends Error {
  constructor(
    readonly connectionId: string,
    readonly reason: unknown,
  ) {
    super(reason instanceof Error ? reason.message : String(reason));
    this.name = 'LoginFailure';
  }
}

/** What the editor sees of a device login. No device code: it is a credential. */
export interface DeviceLoginView {
  status: 'pending' | 'approved' | 'expired' | 'denied' | 'error';
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  expiresAt: number;
  intervalSec: number;
  /** Error code when status is expired, denied or error. */
  code?: string;
}

interface PendingSettings {
  settings: ConnectionSettings;
  metadata: ProviderMetadata;
}

interface DeviceLogin {
  view: DeviceLoginView;
  cancel(): void;
}

export interface LoginServiceOptions {
  lifetimeMs?: number;
  timeoutMs?: number;
  now?: () => number;
  createClient?: (settings: ConnectionSettings, metadata: ProviderMetadata) => TokenEndpointClient;
}

/**
 * The editor's logins, free of Node-RED: the authorization-code login (state bound to the browser session,
 * PKCE S256, nonce with openid, `iss` check) and the device login (RFC 8628 polling in the background).
 * Results go to the caller (the admin routes), which stores them.
 */
export class LoginService {
  private readonly transactions: LoginTransactionStore;
  /** The connection settings of each pending login, by state: they hold the client secret, so memory only. */
  private readonly pending: ExpiringMap<PendingSettings>;
  private readonly devices = new Map<string, DeviceLogin>();
  private readonly lifetimeMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly createClient: (settings: ConnectionSettings, metadata: ProviderMetadata) => TokenEndpointClient;

  constructor(options: LoginServiceOptions = {}) {
    this.lifetimeMs = options.lifetimeMs ?? 10 * 60 * 1000;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.now = options.now ?? Date.now;
    this.transactions = new LoginTransactionStore({ lifetimeMs: this.lifetimeMs, now: this.now });
    // Bounded like the transactions: a login evicted there cannot complete, so its settings go too.
    this.pending = new ExpiringMap({ now: this.now });
    this.createClient =
      options.createClient ??
      ((settings, metadata) => {
        // The dialog's login goes out as the connection's calls do: through its proxy (or the environment's).
        const agents = sharedAgents(settings.proxy);
        return createTokenEndpointClient({
          metadata,
          client: settings.client,
          behaviour: settings.behaviour,
          timeoutMs: this.timeoutMs,
          httpAgent: agents.http,
          httpsAgent: agents.https,
        });
      });
  }

  /** Starts an authorization-code login; returns the provider URL the editor opens in a popup. */
  async begin(input: { connectionId: string; settings: ConnectionSettings; sessionId: string; redirectUri: string }): Promise<{ authorizeUrl: string }> {
    const metadata = await metadataResolver(input.settings, this.timeoutMs)();
    const pkce = createPkcePair();
    const nonce = input.settings.client.scopes.includes('openid') ? randomToken() : undefined;
    const { state } = this.transactions.begin({
      connectionId: input.connectionId,
      sessionId: input.sessionId,
      redirectUri: input.redirectUri,
      codeVerifier: pkce.codeVerifier,
      nonce,
      issuer: metadata.issuer ?? input.settings.issuer,
      issRequired: metadata.authorizationResponseIssParameterSupported === true,
    });
    this.pending.set(state, { settings: input.settings, metadata }, this.now() + this.lifetimeMs);
    const authorizeUrl = buildAuthorizeUrl({
      metadata,
      client: input.settings.client,
      redirectUri: input.redirectUri,
      state,
      codeChallenge: pkce.codeChallenge,
      nonce,
    });
    return { authorizeUrl };
  }

  /**
   * Completes a login from the provider's redirect: the state must be a live one begun by this browser session
   * (consumed whatever happens next), the response must pass the `iss` check, and the code is exchanged with
   * the verifier. Nothing is stored here. The tokens say which endpoints and client they were issued to (the
   * discovered endpoints, for settings that name only an issuer).
   */
  async complete(query: Record<string, unknown>, sessionId: string): Promise<{ connectionId: string; tokens: TokenSet }> {
    const state = query.state;
    if (typeof state !== 'string' || !state) {
      throw new OAuth2Error('OAUTH2_INVALID_STATE', 'The login response has no state', { params: { reason: 'missing' } });
    }
    const pending = this.pending.take(state)?.value;
    const transaction = this.transactions.consume(state, sessionId);
    if (!pending) {
      throw new OAuth2Error('OAUTH2_INVALID_STATE', 'The login is unknown or has expired', { params: { reason: 'unknown' } });
    }
    try {
      const { code } = validateCallback(query, {
        state: transaction.state ?? state,
        issuer: transaction.issuer,
        issuerTemplate: pending.metadata.issuerTemplate,
        issRequired: transaction.issRequired,
      });
      const client = this.createClient(pending.settings, pending.metadata);
      const tokens = await client.exchangeCode({
        code,
        codeVerifier: transaction.codeVerifier,
        redirectUri: transaction.redirectUri,
        nonce: transaction.nonce,
      });
      if (pending.metadata.issuerTemplate) checkTenantIssuer(pending.metadata.issuerTemplate, tokens.idToken);
      // Callback parameters the connection keeps (Intuit's realmId), checked like the token response's values.
      const fromCallback = pickValues(query, pending.settings.behaviour.callbackValues, 'OAUTH2_INVALID_INPUT');
      const withCallback = Object.keys(fromCallback).length > 0 ? { ...tokens, values: { ...tokens.values, ...fromCallback } } : tokens;
      const complete = await this.lookup(pending.settings, withCallback);
      return { connectionId: transaction.connectionId, tokens: { ...complete, issuedTo: resolvedCredentialTarget(pending.settings, pending.metadata) } };
    } catch (err) {
      throw new LoginFailure(transaction.connectionId, err);
    }
  }

  /**
   * Starts a device login and polls in the background as RFC 8628 section 3.5 says (the server's interval,
   * five seconds more on each slow_down, stop on expiry or denial). `onTokens` stores the result.
   */
  async startDevice(
    input: { connectionId: string; settings: ConnectionSettings },
    onTokens: (tokens: TokenSet) => Promise<void>,
  ): Promise<DeviceLoginView> {
    this.cancelDevice(input.connectionId);
    const metadata = await metadataResolver(input.settings, this.timeoutMs)();
    const client = this.createClient(input.settings, metadata);
    const started = await client.startDeviceAuthorization();
    const view: DeviceLoginView = {
      status: 'pending',
      userCode: started.userCode,
      verificationUri: started.verificationUri,
      verificationUriComplete: started.verificationUriComplete,
      expiresAt: started.expiresAt,
      intervalSec: started.intervalSec,
    };
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const login: DeviceLogin = {
      view,
      cancel: () => {
        cancelled = true;
        if (timer) clearTimeout(timer);
      },
    };
    this.devices.set(input.connectionId, login);
    let intervalMs = Math.max(1, started.intervalSec) * 1000;
    const finish = (status: DeviceLoginView['status'], code?: string): void => {
      view.status = status;
      if (code) view.code = code;
    };
    const poll = async (): Promise<void> => {
      if (cancelled) return;
      if (this.now() >= started.expiresAt) {
        finish('expired', 'OAUTH2_DEVICE_CODE_EXPIRED');
        return;
      }
      try {
        const result = await client.pollDeviceToken(started.deviceCode);
        if (cancelled) return;
        if ('status' in result) {
          if (result.status === 'slow_down') intervalMs += 5000;
          schedule();
          return;
        }
        if (metadata.issuerTemplate) checkTenantIssuer(metadata.issuerTemplate, result.idToken);
        const complete = await this.lookup(input.settings, result);
        await onTokens({ ...complete, issuedTo: resolvedCredentialTarget(input.settings, metadata) });
        finish('approved');
      } catch (err) {
        if (cancelled) return;
        if (err instanceof OAuth2Error && err.retryable) {
          // The token endpoint is briefly unavailable: keep polling until the code expires.
          schedule();
          return;
        }
        const code = err instanceof OAuth2Error ? err.code : 'OAUTH2_PROVIDER_ERROR';
        finish(code === 'OAUTH2_DEVICE_CODE_EXPIRED' ? 'expired' : code === 'OAUTH2_ACCESS_DENIED' ? 'denied' : 'error', code);
      }
    };
    const schedule = (): void => {
      timer = setTimeout(() => {
        poll().catch(() => finish('error', 'OAUTH2_PROVIDER_ERROR'));
      }, intervalMs);
      timer.unref();
    };
    schedule();
    return { ...view };
  }

  /** The post-login lookup of settings that have one (post-login-lookup.ts), through the connection's proxy. */
  private async lookup(settings: ConnectionSettings, tokens: TokenSet): Promise<TokenSet> {
    const lookup = settings.behaviour.lookup;
    if (!lookup) return tokens;
    return runPostLoginLookup({
      lookup,
      behaviour: settings.behaviour,
      tokens,
      apiBaseUrl: settings.apiBaseUrl,
      allowedOrigins: settings.allowedOrigins,
      agents: sharedAgents(settings.proxy),
      timeoutMs: this.timeoutMs,
    });
  }

  deviceStatus(connectionId: string): DeviceLoginView | undefined {
    const login = this.devices.get(connectionId);
    return login ? { ...login.view } : undefined;
  }

  cancelDevice(connectionId: string): void {
    this.devices.get(connectionId)?.cancel();
    this.devices.delete(connectionId);
  }

  close(): void {
    for (const id of [...this.devices.keys()]) this.cancelDevice(id);
    this.pending.close();
    this.transactions.close();
  }
}
