// Live updates (docs/dashboard.md): the server sends a "change" event when
// the fleet changed (a run landed, a node came or went, an admin changed
// something); the page's <main> is fetched again and swapped in, without a
// reload: at most once every five seconds, and never while the admin is
// typing in one of its fields. Served as a file: the Content-Security-Policy
// allows no inline script.
"use strict";
(() => {
  const GAP = 5000;
  let last = 0;
  let timer = null;

  const typing = () => {
    const field = document.activeElement;
    const main = document.querySelector("main");
    return field && main && main.contains(field) && field.matches("input, select, textarea");
  };

  const refresh = async () => {
    timer = null;
    if (typing()) {
      later();
      return;
    }
    last = Date.now();
    const answer = await fetch(location.href, { credentials: "same-origin" });
    if (answer.status === 401) {
      location.reload();
      return;
    }
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const next = page.querySelector("main");
    const now = document.querySelector("main");
    if (next && now && !typing()) {
      now.replaceWith(document.importNode(next, true));
      document.body.dataset.updated = String(Date.now());
    }
  };

  const later = () => {
    if (timer === null) {
      timer = setTimeout(refresh, Math.max(0, last + GAP - Date.now()));
    }
  };

  const events = new EventSource("/events");
  events.addEventListener("change", later);
})();
