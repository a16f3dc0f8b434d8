import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startApiServer, type ApiServer } from '../../support/api-server';
import { startAuthServer, type AuthServer } from '../../support/auth-server';

function runChild(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, 'fixtures', 'debug-child.ts')], {
      cwd: path.resolve(__dirname, '../../..'),
      env: { ...process.env, ...env, DEBUG: '*', DEBUG_COLORS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('oauth: secrets stay out of logs and errors (DEBUG=*)', function () {
  this.timeout(30000);
  let server: AuthServer;
  before(async () => {
    server = await startAuthServer();
  });
  after(async () => {
    await server.close();
  });

  const secretsOf = (s: AuthServer) => {
    const { clientId, clientSecret } = s.clients.service;
    return {
      clientSecret,
      basic: Buffer.from(`${clientId}:${clientSecret}`).toString('base64'),
      basicWrong: Buffer.from(`${clientId}:${clientSecret}-wrong`).toString('base64'),
    };
  };

  it('prints no client secret, token, code or verifier on stderr, and DEBUG=* was live', async () => {
    const fakes = { FAKE_REFRESH_TOKEN: 'fake-refresh-token-5f1c9a', FAKE_CODE: 'fake-code-77ab21', FAKE_VERIFIER: 'fake-verifier-0c8d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b' };
    const result = await runChild({
      ISSUER: server.issuer,
      CLIENT_ID: server.clients.service.clientId,
      CLIENT_SECRET: server.clients.service.clientSecret,
      MODE: 'wrapped',
      ...fakes,
    });
    assert.equal(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout) as { accessToken: string; failures: string[] };
    // invalid_client, then the refresh and code grants refused (the service client may not use them): the requests
    // went out. A refused refresh is login required whatever the provider's error (invariant 9).
    assert.deepEqual(out.failures, ['OAUTH2_TOKEN_REQUEST_REJECTED', 'OAUTH2_LOGIN_REQUIRED', 'OAUTH2_TOKEN_REQUEST_REJECTED']);
    assert.match(result.stderr, /control control-line/, 'DEBUG=* reached simple-oauth2\'s debug module');
    assert.ok(!/simple-oauth2:/.test(result.stderr), 'no simple-oauth2 debug line');
    const s = secretsOf(server);
    for (const [name, secret] of Object.entries({ ...s, ...fakes, accessToken: out.accessToken })) {
      assert.ok(!result.stderr.includes(secret), `stderr contains ${name}`);
    }
  });

  it("NODE_DEBUG=http: Node's own debug output prints no client secret or token, and printed a control header", async () => {
    const api: ApiServer = await startApiServer(server);
    try {
      const result = await runChild({
        ISSUER: server.issuer,
        CLIENT_ID: server.clients.service.clientId,
        CLIENT_SECRET: server.clients.service.clientSecret,
        MODE: 'wrapped',
        API_URL: `${api.url}/records`,
        NODE_DEBUG: 'http,https,net,tls',
        FAKE_REFRESH_TOKEN: 'fake-refresh-token-5f1c9a',
        FAKE_CODE: 'fake-code-77ab21',
        FAKE_VERIFIER: 'fake-verifier-0c8d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b',
      });
      assert.equal(result.code, 0, result.stderr);
      const out = JSON.parse(result.stdout) as { accessToken: string };
      assert.match(result.stderr, /control-header-7d1e/, "NODE_DEBUG=http printed the options of Node's own agent, headers included");
      // Node names each new socket "createConnection <host:port>:": the package's token requests (the
      // provider's port) and its API request (a second socket to the API beside the control's) printed theirs.
      const sockets = (hostPort: string): number => result.stderr.split(`createConnection ${hostPort}:`).length - 1;
      assert.ok(sockets(new URL(server.issuer).host) >= 1, "the package's token requests went through Node's debug lines");
      assert.ok(sockets(new URL(api.url).host) >= 2, "the package's API request went through Node's debug lines beside the control's");
      assert.ok(api.requests.some((r) => r.authorization === `Bearer ${out.accessToken}`), 'the token reached the API');
      const s = secretsOf(server);
      for (const [name, secret] of Object.entries({ ...s, accessToken: out.accessToken })) {
        assert.ok(!result.stderr.includes(secret), `stderr contains ${name}`);
      }
    } finally {
      await api.close();
    }
  });

  it('the check is sensitive: simple-oauth2 used raw does leak the credentials under DEBUG=*', async () => {
    const result = await runChild({
      ISSUER: server.issuer,
      CLIENT_ID: server.clients.service.clientId,
      CLIENT_SECRET: server.clients.service.clientSecret,
      MODE: 'raw',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stderr.includes(secretsOf(server).basic), 'raw simple-oauth2 logs the Basic credentials');
  });
});
