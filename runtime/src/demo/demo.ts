/**
 * Demo mode: a local authorization server and a records API on loopback, and the flow that uses them.
 * Nothing leaves the machine; the demo's state (ports, client secret) is kept in the demo's user directory so a
 * second start finds the flow it deployed the first time still working.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEMO_ACCOUNT, startProviderServer, type Account, type ProviderServer } from './provider';
import { startRecordsApi, type RecordsApi } from './records-api';
import { demoFlow } from './flow';

export const DEMO_CLIENT_ID = 'node-red-demo';
const STATE_FILE = 'demo.json';
/** A record of the demo API changes this often. */
const CHANGE_EVERY_MS = 3_000;

interface DemoState {
  clientSecret: string;
  authPort: number;
  apiPort: number;
}

export interface DemoServices {
  issuer: string;
  apiUrl: string;
  account: Account;
  /** The flow to deploy, for a runtime whose editor (and OAuth callback) is at `adminUrl`. */
  flow(adminUrl: string): Record<string, unknown>[];
  /** Allows the callback of a runtime at `adminUrl` at the demo client. */
  allowRuntime(adminUrl: string): Promise<void>;
  close(): Promise<void>;
}

function readState(file: string): DemoState | undefined {
  try {
    const value = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<DemoState>;
    if (typeof value.clientSecret === 'string' && Number.isInteger(value.authPort) && Number.isInteger(value.apiPort)) {
      return value as DemoState;
    }
  } catch {
    // missing or unreadable: a first start
  }
  return undefined;
}

export const callbackUrl = (adminUrl: string): string => new URL('oauth2-connection/callback', adminUrl).href;

/**
 * Starts the demo authorization server and records API on 127.0.0.1. Their ports are the ones a previous
 * start of this user directory used (the deployed flow points at them), else `preferredPorts` (0 = any).
 */
export async function startDemoServices(userDir: string, preferredPorts: { auth: number; api: number }): Promise<DemoServices> {
  const stateFile = path.join(userDir, STATE_FILE);
  const saved = readState(stateFile);
  const clientSecret = saved?.clientSecret ?? randomBytes(24).toString('hex');
  const host = '127.0.0.1';

  let auth: ProviderServer | undefined;
  let api: RecordsApi | undefined;
  try {
    auth = await listenOrExplain('authorization server', saved?.authPort ?? preferredPorts.auth, (port) =>
      startProviderServer({
        host,
        port,
        title: 'Node-RED OAuth2 demo authorization server',
        accessTokenTtlSec: 300,
        clients: [
          {
            client_id: DEMO_CLIENT_ID,
            client_secret: clientSecret,
            // Replaced at run time by the runtime's own callback (allowRuntime); the provider wants one to start.
            redirect_uris: ['http://127.0.0.1/oauth2-connection/callback'],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic',
          },
        ],
      }),
    );
    const provider = auth;
    api = await listenOrExplain('records API', saved?.apiPort ?? preferredPorts.api, (port) =>
      startRecordsApi({ host, port, validateToken: async (token) => (await provider.validateAccessToken(token)).active }),
    );
  } catch (err) {
    await auth?.close();
    throw err;
  }
  const records = api;
  const names = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Edsger Dijkstra', 'Barbara Liskov'];
  for (const name of names) records.add(name);
  let tick = 0;
  const ticker = setInterval(() => {
    tick += 1;
    const id = (tick % names.length) + 1;
    records.update(id, { name: names[id - 1], revision: tick, status: tick % 3 === 0 ? 'done' : 'open' });
  }, CHANGE_EVERY_MS);
  ticker.unref();

  fs.mkdirSync(userDir, { recursive: true });
  const state: DemoState = { clientSecret, authPort: auth.port, apiPort: Number(new URL(records.url).port) };
  fs.writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(stateFile, 0o600);

  const provider = auth;
  return {
    issuer: provider.issuer,
    apiUrl: records.url,
    account: { ...DEMO_ACCOUNT },
    flow: (adminUrl) => demoFlow({ issuer: provider.issuer, apiUrl: records.url, clientId: DEMO_CLIENT_ID, clientSecret, redirectUri: callbackUrl(adminUrl) }),
    allowRuntime: (adminUrl) => provider.addRedirectUri(DEMO_CLIENT_ID, callbackUrl(adminUrl)),
    async close() {
      clearInterval(ticker);
      await Promise.all([provider.close(), records.close()]);
    },
  };
}

async function listenOrExplain<T>(what: string, port: number, start: (port: number) => Promise<T>): Promise<T> {
  try {
    return await start(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(
        `The demo ${what} cannot listen on 127.0.0.1:${port}: the port is in use. Free it, or start the demo with ` +
          'another --user-dir (a new demo picks ports next to --port).',
        { cause: err },
      );
    }
    throw err;
  }
}
