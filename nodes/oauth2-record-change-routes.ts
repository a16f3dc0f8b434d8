import { OAuth2Error, errorCatalogEntry, translateCatalogEntry, type CatalogEntry, type ErrorParams } from './lib/errors';
import type { NodeAPI } from './node-red/types';
import type { RecordChangeNode } from './node-red/record-change-node';
import { refuseCrossSite } from './node-red/admin-origin-guard';

const NODE_ID = /^[0-9a-zA-Z._-]{1,64}$/;
/** The dialog shows this many changes; the rest are counted. */
const PREVIEW_LIMIT = 20;
/** Catalog namespaces as the editor's RED._ knows them: `<module>/<node set>:<node type>.`. */
const RECORD_CHANGE_NS = 'node-red-contrib-http-oauth2/oauth2-record-change:oauth2-record-change.';
const CONNECTION_NS = 'node-red-contrib-http-oauth2/oauth2-connection:oauth2-connection.';

/**
 * An admin route's error answer: the stable code; where its text is in a catalog (`key`, `params`, `paramKeys`:
 * full keys, so the editor translates into its own language); and `message`, the runtime's own text, for API
 * callers, logs and an editor that cannot find the key.
 */
export interface RouteError {
  code: string;
  key?: string;
  params?: ErrorParams;
  /** Params whose text is itself a catalog key (a field's label, a reason), translated first. */
  paramKeys?: Record<string, string>;
  message: string;
}

/**
 * Only plain values go to the browser. An engine error's params hold no secret by contract (lib/errors.ts): they
 * are what `message` is made of, which the answer carried before; anything else (an object, a cause) stays out.
 */
function plainParams(params: ErrorParams): ErrorParams {
  const out: ErrorParams = {};
  for (const [name, value] of Object.entries(params)) {
    if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) out[name] = value;
  }
  return out;
}

/**
 * "Preview next poll": what the deployed node's next poll would emit from its current memory, without
 * emitting or remembering anything. It calls the API with the connection's token, so it needs write permission.
 *
 * With several instances (the Redis store) both routes work on any of them, the one polling or a standby: the
 * memory they read and clear is the shared one (a reset on a standby is seen by the polling instance at its
 * next poll, which then starts as a first poll).
 *
 * Errors answer `{ error: RouteError }`; the editor shows RED._(key, params) in its own language.
 */
export function registerRecordChangeRoutes(
  RED: NodeAPI,
  deps: {
    /** The node's own wording of shared-store failures (Redis away, another instance's reset...), if it has one. */
    describe?: (err: unknown) => CatalogEntry | undefined;
  },
): void {
  const deployedNode = (id: unknown): RecordChangeNode | null =>
    typeof id === 'string' && NODE_ID.test(id) ? (RED.nodes.getNode(id) as RecordChangeNode | null) : null;

  const answer = (code: string, namespace: string, entry: CatalogEntry, fallback: string): RouteError => {
    const full: CatalogEntry = {
      key: namespace + entry.key,
      params: plainParams(entry.params),
      paramKeys: Object.fromEntries(Object.entries(entry.paramKeys).map(([name, key]) => [name, namespace + key])),
    };
    const out: RouteError = { code, key: full.key, params: full.params, message: translateCatalogEntry(full, (key, params) => RED._(key, params)) ?? fallback };
    if (Object.keys(full.paramKeys).length > 0) out.paramKeys = full.paramKeys;
    return out;
  };
  const notDeployed = (): RouteError =>
    answer('OAUTH2_INVALID_INPUT', RECORD_CHANGE_NS, { key: 'errors.previewNotDeployed', params: {}, paramKeys: {} }, 'Deploy the node first');
  /** Engine errors are worded in the connection's catalog, which holds every code; the shared store's in the node's. */
  const failure = (err: unknown, fallbackCode: string): RouteError => {
    const code = err instanceof OAuth2Error ? err.code : fallbackCode;
    const own = deps.describe?.(err);
    if (own) return answer(code, RECORD_CHANGE_NS, own, err instanceof Error ? err.message : String(err));
    if (err instanceof OAuth2Error) return answer(code, CONNECTION_NS, errorCatalogEntry(err), err.message);
    // Not an engine error (a bug below): no catalog entry; its text is what there is.
    return { code, message: err instanceof Error ? err.message : String(err) };
  };

  RED.httpAdmin.use('/oauth2-record-change', refuseCrossSite(RED));
  // "Forget remembered records": the editor's msg.reset.
  RED.httpAdmin.post('/oauth2-record-change/:id/reset', RED.auth.needsPermission('oauth2-record-change.write'), (req, res) => {
    const node = deployedNode(req.params.id);
    if (!node?.poller) {
      res.status(409).json({ error: notDeployed() });
      return;
    }
    node.poller.reset().then(
      () => {
        node.status({ fill: 'grey', shape: 'ring', text: RED._(`${RECORD_CHANGE_NS}status.reset`) });
        res.json({ reset: true });
      },
      (err: unknown) => res.status(500).json({ error: { ...failure(err, 'OAUTH2_TRIGGER_STATE_FAILED'), code: 'OAUTH2_TRIGGER_STATE_FAILED' } }),
    );
  });

  RED.httpAdmin.post('/oauth2-record-change/:id/preview', RED.auth.needsPermission('oauth2-record-change.write'), (req, res) => {
    const node = deployedNode(req.params.id);
    res.set('cache-control', 'no-store');
    if (!node?.poller) {
      res.status(409).json({ error: notDeployed() });
      return;
    }
    node.poller
      .preview()
      .then((preview) => {
        const counts = { created: 0, updated: 0, deleted: 0 };
        for (const change of preview.changes) counts[change.event] += 1;
        res.json({
          counts,
          changes: preview.changes.slice(0, PREVIEW_LIMIT),
          total: preview.changes.length,
          truncated: preview.changes.length > PREVIEW_LIMIT,
          stats: preview.stats,
          firstPoll: preview.firstPoll,
        });
      })
      .catch((err: unknown) => {
        const error = failure(err, 'OAUTH2_REQUEST_FAILED');
        res.status(error.code === 'OAUTH2_INVALID_CONFIG' || error.code === 'OAUTH2_INVALID_INPUT' ? 400 : 502).json({ error });
      });
  });
}
