/**
 * Several Node-RED runtimes (child processes, as test/support/runtime.ts starts them) that share one Redis, one
 * credential secret and the same flows: a cluster as an operator runs it behind a load balancer. Each member
 * knows its name through `global.clusterMember` (functionGlobalContext), so a flow can say which instance
 * emitted a message; a comms client per member sees the node statuses the editor would show.
 */
import Redis from 'ioredis';
import WebSocket from 'ws';
import { deployAndWait, startWatchedRuntime } from './e2e';
import { watchText } from './leaks';
import type { RedisServer } from './redis';
import type { TestRuntime } from './runtime';

export interface NodeStatus {
  fill?: string;
  shape?: string;
  text?: string;
}

/** The node statuses a runtime publishes to its editors (Node-RED's comms websocket, topic status/#). */
export class StatusWatch {
  private readonly ws: WebSocket;
  readonly latest = new Map<string, NodeStatus>();
  /** Every status seen, in arrival order, with the time it arrived. */
  readonly history: Array<{ id: string; status: NodeStatus; at: number }> = [];

  constructor(runtime: TestRuntime) {
    const url = new URL('comms', runtime.adminUrl);
    url.protocol = 'ws:';
    this.ws = new WebSocket(url);
    this.ws.on('open', () => this.ws.send(JSON.stringify({ subscribe: 'status/#' })));
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: WebSocket.RawData) => {
      const text = data.toString();
      watchText(text);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
        const { topic, data: status } = item as { topic?: string; data?: NodeStatus };
        if (typeof topic !== 'string' || !topic.startsWith('status/') || !status) continue;
        const id = topic.slice('status/'.length);
        this.latest.set(id, status);
        this.history.push({ id, status, at: Date.now() });
      }
    });
  }

  text(id: string): string {
    return this.latest.get(id)?.text ?? '';
  }

  close(): void {
    this.ws.terminate();
  }
}

export interface ClusterMember {
  name: string;
  runtime: TestRuntime;
  status: StatusWatch;
}

export interface ClusterOptions {
  redis: RedisServer;
  size?: number;
  keyPrefix: string;
  credentialSecret: string;
  /** Extra fields of httpOAuth2.store (triggerLeaseMs, lockTtlMs, commandTimeoutMs). */
  store?: Record<string, unknown>;
}

export interface Cluster {
  members: ClusterMember[];
  /** The httpOAuth2.store setting every member runs with. */
  store: Record<string, unknown>;
  /** Deploys the same flows to every member and waits until each runs them. */
  deploy(flows: unknown[]): Promise<void>;
  /** SIGKILL, as a crashed host. */
  kill(member: ClusterMember): Promise<void>;
  /** Starts a killed or stopped member again with its user directory and port (it loads its flows). */
  restart(member: ClusterMember): Promise<void>;
  close(): Promise<void>;
}

const NAMES = ['A', 'B', 'C', 'D', 'E'];

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const store = { type: 'redis', url: options.redis.url, keyPrefix: options.keyPrefix, ...options.store };
  const start = async (name: string, previous?: TestRuntime): Promise<ClusterMember> => {
    const runtime = await startWatchedRuntime({
      userDir: previous?.userDir,
      port: previous?.port,
      credentialSecret: options.credentialSecret,
      settings: { httpOAuth2: { store }, functionGlobalContext: { clusterMember: name } },
    });
    return { name, runtime, status: new StatusWatch(runtime) };
  };
  const members = await Promise.all(NAMES.slice(0, options.size ?? 3).map((name) => start(name)));
  return {
    members,
    store,
    async deploy(flows) {
      await Promise.all(members.map((m) => deployAndWait(m.runtime, flows, 20_000)));
    },
    async kill(member) {
      member.status.close();
      await member.runtime.kill();
    },
    async restart(member) {
      member.status.close();
      const fresh = await start(member.name, member.runtime);
      member.runtime = fresh.runtime;
      member.status = fresh.status;
    },
    async close() {
      await Promise.all(
        members.map(async (m) => {
          m.status.close();
          await m.runtime.stop();
        }),
      );
    },
  };
}

/** A plain client on the test's Redis (for reading what the nodes wrote). */
export function redisClient(redis: RedisServer): Redis {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  // The tests stop Redis on purpose: its reconnect errors are expected, not worth a line each.
  client.on('error', () => undefined);
  return client;
}

/**
 * Every key under `prefix` with its value as text, whatever its type. Handed to the leak scan: what the nodes
 * keep in Redis must never hold a token, a client secret or a code in clear (invariant 5).
 */
export async function redisContents(client: Redis, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const type = await client.type(key);
      let value: unknown;
      if (type === 'string') value = await client.get(key);
      else if (type === 'hash') value = await client.hgetall(key);
      else if (type === 'list') value = await client.lrange(key, 0, -1);
      else if (type === 'set') value = await client.smembers(key);
      else if (type === 'zset') value = await client.zrange(key, 0, -1, 'WITHSCORES');
      else if (type === 'stream') value = await client.xrange(key, '-', '+');
      else value = `<${type}>`;
      out.set(key, typeof value === 'string' ? value : JSON.stringify(value));
    }
  } while (cursor !== '0');
  return out;
}
