/**
 * RedisConnection against a real redis-server: 'reconnected' after an outage the connection started in, a
 * failed subscribe that leaves nothing registered, and many listeners without a MaxListenersExceededWarning.
 */
import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { startRedis, type RedisServer } from '../../support/redis';
import { Instances, ready, sleep, testSettings, until } from './trigger-support';
import { needsSystemPackage } from '../../support/system-packages';

describe('redis/client: RedisConnection', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let redis: RedisServer;
  let instances: Instances;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(async () => {
    instances = new Instances();
    await ensureStarted(); // a failed case may have left it stopped
  });
  afterEach(async () => {
    await instances.closeAll();
  });

  async function ensureStarted(): Promise<void> {
    if (redis.pid === undefined) await redis.start();
  }

  it("a connection made while Redis is down says 'reconnected' when Redis comes back (never ready before)", async () => {
    await redis.stop();
    const connection = instances.connect(testSettings(redis.url, { commandTimeoutMs: 500 }));
    let reconnected = 0;
    connection.on('reconnected', () => (reconnected += 1));
    await until(() => connection.status() === 'unavailable', 5_000, 'unavailable while Redis is down');
    await sleep(300);
    assert.equal(reconnected, 0);
    await redis.start();
    await until(() => reconnected === 1, 5_000, "'reconnected' after Redis came back");
    assert.equal(connection.status(), 'ready');
  });

  it("a connection that was ready from the start says 'reconnected' only after an outage", async () => {
    const connection = instances.connect(testSettings(redis.url, { commandTimeoutMs: 500 }));
    let reconnected = 0;
    connection.on('reconnected', () => (reconnected += 1));
    await ready(connection);
    await sleep(200);
    assert.equal(reconnected, 0, "no 'reconnected' for the first connection");
    await redis.stop();
    await until(() => connection.status() === 'unavailable', 5_000, 'unavailable');
    await redis.start();
    await until(() => reconnected === 1, 5_000, "'reconnected' after the outage");
  });

  it('a failed subscribe takes its listener back: retries register it once, each message reaches it once', async () => {
    const connection: RedisConnection = instances.connect(testSettings(redis.url, { commandTimeoutMs: 500 }));
    await ready(connection);
    const channel = connection.key('client-test', 'channel');
    let delivered = 0;
    await redis.stop();
    await until(() => connection.status() === 'unavailable', 5_000, 'unavailable');
    // A caller that retries with a fresh closure each time (as one written against "retry on reconnected" does).
    for (let attempt = 0; attempt < 3; attempt++) {
      await assert.rejects(
        connection.subscribe(channel, () => (delivered += 1)),
        (err: unknown) => isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED'),
      );
    }
    await redis.start();
    await ready(connection);
    let unsubscribe: (() => void) | undefined;
    for (let i = 0; i < 40 && !unsubscribe; i++) {
      unsubscribe = await connection.subscribe(channel, () => (delivered += 1)).catch(() => undefined);
      if (!unsubscribe) await sleep(250);
    }
    assert.ok(unsubscribe, 'subscribed once Redis was back');
    await connection.client.publish(channel, 'hello');
    await sleep(300);
    assert.equal(delivered, 1, `one message reached the listeners ${delivered} times`);
    unsubscribe();
  });

  it('a subscription survives Redis restarts (resubscribed once per reconnect, each message once), and a restart during the resubscribe leaves no unhandled rejection', async () => {
    const connection: RedisConnection = instances.connect(testSettings(redis.url, { commandTimeoutMs: 500 }));
    await ready(connection);
    const channel = connection.key('client-test', 'restart');
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => {
      rejections.push(reason);
    };
    process.on('unhandledRejection', onRejection);
    try {
      let delivered = 0;
      const unsubscribe = await connection.subscribe(channel, () => (delivered += 1));
      // Flapping: Redis comes back and goes again while the subscriber reconnects and resubscribes.
      for (let flap = 0; flap < 3; flap++) {
        await redis.stop();
        await until(() => connection.status() === 'unavailable', 5_000, 'unavailable');
        await redis.start();
        await sleep(flap * 40);
      }
      await ready(connection);
      // The subscriber reconnects on its own schedule: publish until a message gets through.
      let through = false;
      for (let i = 0; i < 60 && !through; i++) {
        const before = delivered;
        await connection.client.publish(channel, 'after restart');
        await sleep(150);
        through = delivered > before;
      }
      assert.ok(through, 'a message published after the restarts reaches the listener');
      const count = delivered;
      await connection.client.publish(channel, 'once');
      await sleep(300);
      assert.equal(delivered, count + 1, 'each message reaches the listener once');
      unsubscribe();
      await sleep(100);
      assert.deepEqual(rejections.map(String), []);
    } finally {
      process.removeListener('unhandledRejection', onRejection);
    }
  });

  it('twenty status listeners (twenty connection nodes) print no MaxListenersExceededWarning', async () => {
    const connection = instances.connect(testSettings(redis.url));
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const listeners = Array.from({ length: 20 }, () => () => undefined);
      for (const l of listeners) connection.on('status', l);
      for (const l of listeners) connection.on('reconnected', l);
      await sleep(50); // process warnings are emitted on the next tick
      assert.deepEqual(
        warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
        [],
      );
    } finally {
      process.removeListener('warning', onWarning);
    }
  });
});
