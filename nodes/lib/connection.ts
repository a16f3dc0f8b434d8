import { EventEmitter } from 'node:events';
import type { Authorizer } from './http/authorizer';
import { OriginAllowlist, parseOriginList } from './http/origin';
import { agentFetch } from './http/agent-fetch';
import { createAgents, sharedAgents, type AgentPair } from './http/agents';
import { proxySettingsFromEnv } from './http/proxy';
import { credentialTarget, resolvedCredentialTarget, sameCredentialTarget, type ConnectionSettings } from './connection-settings';
import { OAuth2Error } from './errors';
import { valueApiBaseUrl } from './connection-values';
import { discoverProvider } from './oauth/discovery';
import { acceptedDocumentIssuer } from './oauth/tenant-issuer';
import { createTokenEndpointClient } from './oauth/simple-oauth2-client';
import type { RevocationResult } from './oauth/revocation';
import type { DevicePollPending, TokenEndpointClient } from './oauth/token-endpoint';
import { TokenManager, type ConnectionState } from './tokens/token-manager';
import type { RenewalCoordination, StoredTokens, TokenStore } from './tokens/token-store';
import type { CredentialTarget, ProviderMetadata, TokenSet } from './types';

export type TlsOptions = Parameters<typeof createAgents>[0]['tls'];

export interface ConnectionOptions {
  id: string;
  settings: ConnectionSettings;
  store: TokenStore;
  /** With a store shared by several Node-RED instances (Redis): the cluster-wide renewal lock and change feed. */
  coordination?: RenewalCoordination;
  tls?: TlsOptions;
  /** Timeout for discovery and token-endpoint calls. */
  timeoutMs?: number;
  /**
   * The connection's "token expired" condition on API answers besides its statuses (the adapter compiles the
   * configured JSONata): true means refresh once and retry, as for an expired status.
   */
  expiredWhen?: (answer: { statusCode: number; headers: Record<string, string | string[]>; payload: unknown }) => Promise<boolean>;
}

/**
 * Resolves the provider's metadata once: from the configured endpoints, else by discovery. A failed discovery
 * is forgotten so the next call tries again (the provider may be down at start).
 */
export function metadataResolver(settings: ConnectionSettings, timeoutMs: number, agents?: Pick<AgentPair, 'http' | 'https'>): () => Promise<ProviderMetadata> {
  let pending: Promise<ProviderMetadata> | undefined;
  return () => {
    if (settings.metadata.tokenEndpoint) {
      // Typed or saved endpoints: a multi-tenant issuer's template is known from the issuer alone.
      const template = settings.issuer ? acceptedDocumentIssuer(settings.issuer)?.template : undefined;
      return Promise.resolve({ ...settings.metadata, tokenEndpoint: settings.metadata.tokenEndpoint, ...(template ? { issuerTemplate: template } : {}) });
    }
    if (!settings.issuer) {
      return Promise.reject(new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid configuration: tokenEndpoint is required', {
        params: { field: 'tokenEndpoint', reason: 'required' },
      }));
    }
    if (!pending) {
      // What discovery cannot tell (how revocation wants its tokens) stays as configured.
      const style = settings.metadata.revocationStyle;
      // Through the connection's agents (its proxy and TLS), as every other call it makes.
      const fetchImpl = agentFetch(agents ?? sharedAgents(settings.proxy));
      pending = discoverProvider(settings.issuer, { timeoutMs, fetchImpl }).then((md) => (style && style !== 'rfc7009' ? { ...md, revocationStyle: style } : md));
      pending.catch(() => {
        pending = undefined;
      });
    }
    return pending;
  };
}

/**
 * A token-endpoint client whose endpoints are known only after discovery: every call waits for the metadata,
 * then goes to the real client. Lets the token manager exist from the node's first moment.
 */
export function lazyTokenEndpointClient(
  settings: ConnectionSettings,
  metadata: () => Promise<ProviderMetadata>,
  timeoutMs: number,
  agents: ReturnType<typeof createAgents>,
): TokenEndpointClient {
  let client: Promise<TokenEndpointClient> | undefined;
  const get = (): Promise<TokenEndpointClient> => {
    if (!client) {
      client = metadata().then((md) =>
        createTokenEndpointClient({
          metadata: md,
          client: settings.client,
          behaviour: settings.behaviour,
          timeoutMs,
          httpAgent: agents.http,
          httpsAgent: agents.https,
        }),
      );
      client.catch(() => {
        client = undefined;
      });
    }
    return client;
  };
  return {
    exchangeCode: async (input) => (await get()).exchangeCode(input),
    refresh: async (previous) => (await get()).refresh(previous),
    clientCredentials: async () => (await get()).clientCredentials(),
    startDeviceAuthorization: async () => (await get()).startDeviceAuthorization(),
    pollDeviceToken: async (deviceCode: string): Promise<TokenSet | DevicePollPending> =>
      (await get()).pollDeviceToken(deviceCode),
    revoke: async (tokens) => (await get()).revoke(tokens),
  };
}

/**
 * One deployed OAuth2 connection: its settings, token manager, origin allowlist and keep-alive agents. This is
 * what every request node using the connection talks to (as an Authorizer), and what the admin routes update
 * after a login. Events: 'state' (ConnectionState).
 */
export class Connection extends EventEmitter implements Authorizer {
  readonly id: string;
  readonly settings: ConnectionSettings;
  readonly agents: ReturnType<typeof createAgents>;
  readonly client: TokenEndpointClient;
  readonly metadata: () => Promise<ProviderMetadata>;
  private readonly manager: TokenManager;
  /** The settings name no token endpoint: it is discovered from the issuer. */
  private readonly discoverOnly: boolean;
  private discoveredTarget: CredentialTarget | undefined;
  private starting: Promise<void> | undefined;
  private readonly allowlist: OriginAllowlist;
  private readonly store: TokenStore;
  readonly expiredAnswer?: ConnectionOptions['expiredWhen'];

  constructor(options: ConnectionOptions) {
    super();
    this.id = options.id;
    this.settings = options.settings;
    this.store = options.store;
    if (options.expiredWhen) this.expiredAnswer = options.expiredWhen;
    const timeoutMs = options.timeoutMs ?? 30_000;
    this.allowlist = new OriginAllowlist(options.settings.apiBaseUrl, parseOriginList(options.settings.allowedOrigins.join(' ')));
    this.agents = createAgents({ tls: options.tls, proxy: options.settings.proxy ?? proxySettingsFromEnv() });
    const resolve = metadataResolver(options.settings, timeoutMs, this.agents);
    // Settings naming only an issuer send credentials where discovery says: that target is learnt here.
    this.discoverOnly = !options.settings.metadata.tokenEndpoint;
    this.metadata = () =>
      resolve().then((md) => {
        if (this.discoverOnly) this.discoveredTarget = resolvedCredentialTarget(options.settings, md);
        return md;
      });
    this.client = lazyTokenEndpointClient(options.settings, this.metadata, timeoutMs, this.agents);
    this.manager = new TokenManager({
      connectionId: options.id,
      grant: options.settings.grant,
      client: this.client,
      store: options.store,
      coordination: options.coordination,
      skewMs: options.settings.refreshSkewMs,
      target: credentialTarget(options.settings),
      discovered: this.discoverOnly
        ? {
            known: () => this.discoveredTarget,
            resolve: () => this.metadata().then(() => this.discoveredTarget, () => undefined),
          }
        : undefined,
    });
    this.manager.on('state', (state: ConnectionState) => this.emit('state', state));
  }

  get expiredStatuses(): readonly number[] {
    return this.settings.expiredStatuses;
  }

  /** Loads tokens: the newer of the token store and `initial` (Node-RED's credential copy) wins. */
  start(initial?: StoredTokens): Promise<void> {
    this.starting = this.manager.init(initial);
    return this.starting;
  }

  /**
   * Resolves once the stored tokens are loaded (a discovery-only connection may discover first to know whether
   * they are its own), or after `maxWaitMs`; never rejects (a failed load shows in the state).
   */
  whenStarted(maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, maxWaitMs);
      timer.unref?.();
    });
    return Promise.race([(this.starting ?? Promise.resolve()).catch(() => undefined), waited]).finally(() => clearTimeout(timer));
  }

  /**
   * The API base URL requests resolve against: the one the provider's token response set (checked against its
   * pattern: Salesforce's instance_url), else the configured one.
   */
  get apiBaseUrl(): string | undefined {
    return valueApiBaseUrl(this.settings.behaviour, { values: this.manager.currentValues() }) ?? this.settings.apiBaseUrl;
  }

  /**
   * The connection values request and trigger nodes read (`{{{connection.name}}}`, `msg.oauth2`): what the
   * provider gave with the tokens, and `apiBaseUrl`. Never a token or a secret.
   */
  values(): Record<string, string> {
    const base = this.apiBaseUrl;
    return { ...this.manager.currentValues(), ...(base ? { apiBaseUrl: base } : {}) };
  }

  /** Headers every request of the connection carries (a post-login lookup's tenant id), unless it sets them. */
  requestHeaders(): Record<string, string> | undefined {
    const lookup = this.settings.behaviour.lookup;
    const value = lookup?.header ? this.manager.currentValues()?.[lookup.as] : undefined;
    return lookup?.header && value ? { [lookup.header]: value } : undefined;
  }

  allows(url: URL): boolean {
    if (this.allowlist.allows(url)) return true;
    // The provider's API base URL, once its value passed its pattern: its origin is the connection's API origin.
    const base = valueApiBaseUrl(this.settings.behaviour, { values: this.manager.currentValues() });
    return base !== undefined && new OriginAllowlist(base).allows(url);
  }

  async getAccessToken(): Promise<{ accessToken: string; tokenType: string }> {
    const tokens = await this.manager.getAccessToken();
    return { accessToken: tokens.accessToken, tokenType: tokens.tokenType };
  }

  async renewAfterRejection(rejectedAccessToken: string, options?: { requestMs?: number }): Promise<{ accessToken: string; tokenType: string }> {
    const tokens = await this.manager.renewAfterRejection(rejectedAccessToken, options);
    return { accessToken: tokens.accessToken, tokenType: tokens.tokenType };
  }

  state(): ConnectionState {
    return this.manager.state();
  }

  snapshot(): ReturnType<TokenManager['snapshot']> {
    return this.manager.snapshot();
  }

  /**
   * Whether this connection sends credentials exactly to `target`: its configured endpoints, or, for settings
   * naming only an issuer, the endpoints it discovers there (discovered now if not yet; false if that fails).
   */
  async sendsTo(target: CredentialTarget): Promise<boolean> {
    if (sameCredentialTarget(credentialTarget(this.settings), target)) return true;
    if (!this.discoverOnly) return false;
    const discovered = this.discoveredTarget ?? (await this.metadata().then(() => this.discoveredTarget, () => undefined));
    return !!discovered && sameCredentialTarget(discovered, target);
  }

  /**
   * Tokens from a completed login (authorization code or device grant), stored for this connection. Resolves
   * whether this connection uses them: not when they were issued to other authorization-server settings than
   * its own (a login made with the dialog's values), which wait for a deploy of those settings.
   */
  adoptTokens(tokens: TokenSet): Promise<boolean> {
    return this.manager.setTokens(tokens);
  }

  /**
   * Revokes at the provider (refresh token first) and forgets the tokens here. `revoker` is who revokes: this
   * connection's own client by default, null to forget without telling the provider (the tokens were issued
   * to other endpoints than this connection's, which must not receive them).
   */
  async logout(
    revoker: Pick<TokenEndpointClient, 'revoke'> | null = this.client,
  ): Promise<RevocationResult> {
    const stored = await this.store.get(this.id);
    const result = stored && revoker ? await revoker.revoke(stored.tokens) : { refreshTokenRevoked: false, accessTokenRevoked: false };
    await this.manager.clear();
    return result;
  }

  close(): void {
    this.manager.close();
    this.agents.destroy();
    this.removeAllListeners();
  }
}
