/**
 * Helpers shared by the package's editor files (nodes/*.html). Node-RED serves a module's resources/
 * folder at resources/<module>/; each editor file loads this script before its own.
 */
(function () {
    'use strict';

    let uidCounter = 0;

    window.HttpOAuth2Editor = {
        /** RED._ bound to a catalog namespace, so code outside a node definition resolves keys as `this._` does. */
        translator: function (ns) {
            return function (key, params) {
                return RED._(ns + key, params);
            };
        },

        /**
         * The text of an admin route's error answer ({code, key, params, paramKeys, message}) in the editor's
         * language: the catalog entry through RED._ (params named in paramKeys are catalog keys themselves,
         * translated first), else the runtime's own message; '' when there is neither.
         */
        errorText: function (error) {
            if (!error || typeof error !== 'object') {
                return '';
            }
            const lookup = function (key, params) {
                if (typeof key !== 'string' || key === '') {
                    return undefined;
                }
                const text = RED._(key, params);
                // i18next answers a missing key with the key (without its namespace).
                const bare = key.slice(key.indexOf(':') + 1);
                return typeof text === 'string' && text !== '' && text !== key && text.slice(-bare.length) !== bare ? text : undefined;
            };
            const params = {};
            if (error.params && typeof error.params === 'object') {
                Object.keys(error.params).forEach(function (name) {
                    params[name] = error.params[name];
                });
            }
            if (error.paramKeys && typeof error.paramKeys === 'object') {
                Object.keys(error.paramKeys).forEach(function (name) {
                    const text = lookup(error.paramKeys[name]);
                    if (text !== undefined) {
                        params[name] = text;
                    }
                });
            }
            const text = lookup(error.key, params);
            if (text !== undefined) {
                return text;
            }
            return typeof error.message === 'string' ? error.message : '';
        },

        /**
         * A status the runtime sent with its catalog entry (nodes/node-red/status-text.ts), in the editor's
         * language: each value that is an entry of its own is said first, and the values named in `times`
         * (epoch milliseconds) become a time of day in the editor's locale, with the date when not today.
         */
        statusText: function (node, entry) {
            const params = {};
            Object.keys(entry.params || {}).forEach(function (name) {
                const value = entry.params[name];
                params[name] = value && typeof value === 'object' && typeof value.key === 'string'
                    ? window.HttpOAuth2Editor.statusText(node, value)
                    : value;
            });
            (Array.isArray(entry.times) ? entry.times : []).forEach(function (name) {
                if (typeof params[name] === 'number') {
                    params[name] = window.HttpOAuth2Editor.localTime(params[name]);
                }
            });
            return node._(entry.key, params);
        },

        /** A time of day in the editor's language; with the date when it is not today. */
        localTime: function (ms) {
            const lang = (RED.i18n && typeof RED.i18n.lang === 'function' && RED.i18n.lang()) || undefined;
            const at = new Date(ms);
            try {
                return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString(lang) : at.toLocaleString(lang);
            } catch {
                // A language tag the browser does not know: its own locale.
                return at.toLocaleTimeString();
            }
        },

        isBlank: function (value) {
            return value === undefined || value === null || String(value).trim() === '';
        },

        /** An id unique in the editor page, for inputs and the labels that point at them. */
        nextId: function (base) {
            uidCounter += 1;
            return base + '-' + uidCounter;
        },

        /** A row of messages shown in a dialog: kind is 'info' | 'success' | 'warning' | 'error'. */
        setMessage: function (target, kind, text) {
            const colours = {
                info: '',
                success: 'var(--red-ui-text-color-success)',
                warning: 'var(--red-ui-text-color-warning)',
                error: 'var(--red-ui-text-color-error)'
            };
            target.empty();
            if (!text) {
                target.hide();
                return target;
            }
            // The text keeps the theme's text colour (red or yellow text is hard to read on light or dark themes
            // alike); the kind shows as a coloured bar beside it.
            const colour = colours[kind] || '';
            target.css({
                'border-left': colour ? '3px solid ' + colour : '',
                'padding-left': colour ? '6px' : ''
            }).text(text).show();
            return target;
        },

        /**
         * How long the connection dialog waits for the login popup before it says what to check (a provider
         * error page never comes back). A page may lower it (the browser tests do).
         */
        loginHintMs: 45000,

        /**
         * The parameters the connection's extra-parameter lists may not set, as the engine has them
         * (nodes/lib/oauth/reserved-params.ts); test/unit/editor-params.test.ts pins these lists to the engine's.
         */
        reservedParams: {
            authorize: ['state', 'code_challenge', 'code_challenge_method', 'redirect_uri', 'client_id',
                'response_type', 'nonce', 'scope', 'resource'],
            token: ['grant_type', 'code', 'code_verifier', 'redirect_uri', 'refresh_token', 'device_code',
                'client_id', 'client_secret', 'scope', 'resource']
        },

        /**
         * The pagination section both editors (request and record-change) show: the kinds, the settings each kind
         * reads, and the rules for its fields, as the engine has them (nodes/lib/http/pagination.ts,
         * nodes/lib/http/records.ts); test/unit/editor-pagination.test.ts pins these lists to the engine's.
         */
        pagination: {
            KINDS: ['none', 'link', 'next-url', 'cursor', 'page', 'offset', 'body-cursor'],
            /** The saved settings each kind reads; the others are hidden and ignored at runtime. */
            FIELDS: {
                'none': [],
                'link': [],
                'next-url': ['paginationPath'],
                'cursor': ['paginationPath', 'paginationParam'],
                'page': ['paginationParam', 'pageStart', 'pageSizeParam', 'pageSize'],
                'offset': ['paginationParam', 'pageSizeParam', 'pageSize'],
                'body-cursor': ['paginationPath', 'paginationParam', 'paginationUrl', 'paginationMorePath']
            },
            /** Path segments that reach the prototype chain rather than the data: never read. */
            FORBIDDEN_SEGMENTS: ['__proto__', 'constructor', 'prototype'],
            /** `kind` when it is one, else 'none'. */
            kindOf: function (kind) {
                return this.KINDS.indexOf(kind) !== -1 ? kind : 'none';
            },
            /** Whether `kind` reads the saved setting `field`. */
            uses: function (kind, field) {
                return (this.FIELDS[this.kindOf(kind)] || []).indexOf(field) !== -1;
            },
            /** A dot path the engine reads (`data.items`, `@odata.nextLink`): no empty or forbidden segment. */
            isDotPath: function (value) {
                const forbidden = this.FORBIDDEN_SEGMENTS;
                const v = String(value === undefined || value === null ? '' : value).trim();
                return v !== '' && v.split('.').every(function (segment) {
                    return segment !== '' && forbidden.indexOf(segment) === -1;
                });
            },
            /** A query parameter name: something a URL can carry without escaping surprises. */
            isParamName: function (value) {
                return /^[^\s&=#?]+$/.test(String(value === undefined || value === null ? '' : value).trim());
            }
        }
    };

    // Statuses of this package's nodes in the editor's language, once per page (each node file loads this
    // script). The runtime sends each status's catalog entry on a topic of its own, with the server's text it
    // belongs to (nodes/node-red/status-text.ts): while that text is the node's status, the status is said from
    // the entry instead. Node-RED's own handler sets the status; this one runs after it.
    if (!window.HttpOAuth2EditorStatusHook && typeof RED !== 'undefined' && RED.comms && typeof RED.comms.subscribe === 'function') {
        window.HttpOAuth2EditorStatusHook = true;
        const entries = {};
        const apply = function (id) {
            const entry = entries[id];
            const node = RED.nodes.node(id);
            if (!entry || !node || typeof node._ !== 'function' || !node.status || node.status.text !== entry.text) {
                return;
            }
            node.status.text = window.HttpOAuth2Editor.statusText(node, entry);
            node.dirty = true;
            node.dirtyStatus = true;
            if (RED.view && typeof RED.view.redrawStatus === 'function') {
                RED.view.redrawStatus(node);
            }
        };
        RED.comms.subscribe('http-oauth2-status/#', function (topic, msg) {
            const id = topic.split('/')[1];
            if (!msg || typeof msg.key !== 'string' || typeof msg.text !== 'string') {
                delete entries[id];
                return;
            }
            entries[id] = msg;
            apply(id);
        });
        RED.comms.subscribe('status/#', function (topic) {
            const id = topic.split('/')[1];
            if (entries[id]) {
                // After Node-RED's own handler, whichever was subscribed first.
                window.setTimeout(function () {
                    apply(id);
                }, 0);
            }
        });
        // Flows loaded after the entries arrived (the editor's start): say the statuses already shown.
        if (RED.events && typeof RED.events.on === 'function') {
            RED.events.on('flows:loaded', function () {
                Object.keys(entries).forEach(apply);
            });
        }
    }
})();
