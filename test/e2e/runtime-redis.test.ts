/**
 * The standalone runtime with the shared Redis store, as an operator starts it: `--redis` with an ACL user and
 * its password in the URL, and a key prefix. The ACL is the README's, so the documented rights are enough. It
 * prints where the store is without the password, the nodes keep their tokens and trigger state under the
 * prefix in that Redis, and SIGTERM still exits 0.
 */
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startCli, type StartedCli } from '../support/cli';
import { connectionNode, requestLane, tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import { startRedis, type RedisServer } from '../support/redis';
import { tempUserDir } from '../support/runtime';
import { needsSystemPackage } from '../support/system-packages';

const SECRET = 'runtime-redis-test-credential-secret';
const REDIS_PASSWORD = 'redis-pw-4f1d2c9e8b';
const ADMIN_PASSWORD = 'redis-admin-pw-0c7a5e';
const PREFIX = 'cli-test:';
/** The README's ACL example, with this test's prefix. */
const ACL = `on >${REDIS_PASSWORD} resetkeys ~${PREFIX}* resetchannels &${PREFIX}* +@read +@write +@scripting +@pubsub +@connection +info`;

describe('runtime: node-red-http-oauth2 start --redis', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(40_000);
  let redis: RedisServer;
  let admin: Redis;
  let auth: AuthServer;
  let api: RecordsApi;
  let cli: StartedCli | undefined;

  before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    // As a production Redis: the default user needs a password the runtime does not have; the runtime's user
    // has the README's rights and no more.
    await admin.call('ACL', 'SETUSER', 'nodered', ...ACL.split(' '));
    await admin.config('SET', 'requirepass', ADMIN_PASSWORD);
    await admin.auth(ADMIN_PASSWORD);
    auth = await startAuthServer();
    api = await startRecordsApi(auth);
    api.add('first');
    cli = await startCli(['--port', '0', '--user-dir', tempUserDir('nr-oauth2-cli-redis-'), '--log-level', 'info', '--redis-prefix', PREFIX], {
      NODE_RED_CREDENTIAL_SECRET: SECRET,
      HTTP_OAUTH2_REDIS_URL: `redis://nodered:${REDIS_PASSWORD}@127.0.0.1:${redis.port}/0`,
    });
  });

  after(async () => {
    await cli?.stop('SIGKILL');
    admin?.disconnect();
    await api?.close();
    await auth?.close();
    await redis?.close();
  });

  it('says which Redis it uses (host and port, never the password)', () => {
    assert.ok(cli);
    assert.match(cli.stdout(), new RegExp(`Shared store: +Redis redis://127\\.0\\.0\\.1:${redis.port}, key prefix cli-test:`));
    assert.doesNotMatch(cli.stdout() + cli.stderr(), new RegExp(REDIS_PASSWORD));
  });

  it('with the README ACL, the nodes keep their tokens and trigger state in that Redis, under the prefix; SIGTERM exits 0', async () => {
    assert.ok(cli);
    const flows = [
      tab(),
      connectionNode(auth, {
        grantType: 'client_credentials',
        clientId: auth.clients.service.clientId,
        clientSecret: auth.clients.service.clientSecret,
        apiBaseUrl: api.url,
        scopes: 'api:read',
      }),
      ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' }),
      ...triggerLane({ id: 't1', path: '/poll/t1', config: { url: '/records', interval: 5, intervalUnit: 's' } }),
    ];
    const deployed = await cli.admin('flows', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v1' },
      body: JSON.stringify(flows),
    });
    assert.ok(deployed.status === 204 || deployed.status === 200, `deploy answered ${deployed.status}`);
    let res: Response | undefined;
    for (let i = 0; i < 50; i += 1) {
      res = await fetch(new URL('api/records', cli.adminUrl));
      if (res.status !== 404) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(res?.status, 200, await res?.text());
    // The trigger's first poll remembers 'first' (its state is written to Redis) and sends nothing.
    for (let i = 0; i < 100 && api.listRequests.length === 0; i += 1) await new Promise((r) => setTimeout(r, 100));
    assert.ok(api.listRequests.length > 0, 'the trigger polled');
    await new Promise((r) => setTimeout(r, 500));
    const keys = await admin.keys('*');
    assert.ok(keys.length >= 2, `the token and trigger stores wrote to Redis: ${JSON.stringify(keys)}`);
    assert.deepEqual(keys.filter((k) => !k.startsWith(PREFIX)), [], 'every key under the prefix');
    // Nothing refused by the ACL: the status route answers from Redis, and the trigger is fine.
    const status = (await (await cli.admin('oauth2-connection/conn1/status')).json()) as { state?: string };
    assert.equal(status.state, 'ready', JSON.stringify(status));
    const polled = await fetch(new URL('api/poll/t1', cli.adminUrl));
    assert.equal(polled.status, 200, await polled.text());
    assert.equal(await cli.stop('SIGTERM'), 0, cli.stderr());
    assert.doesNotMatch(cli.stdout() + cli.stderr(), new RegExp(REDIS_PASSWORD));
  });
});
