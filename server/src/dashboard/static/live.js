// Live updates (docs/dashboard.md): the server sends a "change" event when
// the fleet changed (a run landed, a node came or went, an admin changed
// something); the page's <main> is fetched again and swapped in, without a
// reload. Served as a file: the Content-Security-Policy allows no inline script.
"use strict";
(() => {
  let busy = false;
  let again = false;
  const refresh = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const answer = await fetch(location.href, { credentials: "same-origin" });
      if (answer.status === 401) {
        location.reload();
        return;
      }
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const next = page.querySelector("main");
      const now = document.querySelector("main");
      if (next && now) {
        now.replaceWith(document.importNode(next, true));
        document.body.dataset.updated = String(Date.now());
      }
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  };
  const events = new EventSource("/events");
  events.addEventListener("change", refresh);
})();
