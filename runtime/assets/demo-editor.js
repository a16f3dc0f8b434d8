// The demo's editor opens on the Debug sidebar, where the flow's messages appear, unless this browser has
// already picked a sidebar tab itself. Runs before the editor starts (a page script of editorTheme).
(function () {
  try {
    if (window.localStorage.getItem('last-sidebar-tab') === null) window.localStorage.setItem('last-sidebar-tab', 'debug');
  } catch {
    // No storage (private mode): the editor opens on its default tab.
  }
})();
