/**
 * Helpers shared by the package's three editor files (nodes/*.html). Node-RED serves a module's resources/
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
        }
    };
})();
