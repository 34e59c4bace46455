// The daemon's live page: fetch this page again every few seconds and put the new <main> in place.
// The server answers 304 while nothing changed. No other request, no eval, no HTML from elsewhere.
"use strict";
(() => {
  const root = document.documentElement;
  const every = Number(root.dataset.refresh) || 5000;
  let etag = root.dataset.etag || "";

  async function refresh() {
    try {
      const response = await fetch(location.pathname, {
        cache: "no-store",
        credentials: "same-origin",
        headers: etag ? { "If-None-Match": etag } : {},
      });
      if (response.status === 200) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const main = page.querySelector("main");
        if (main) {
          document.querySelector("main").replaceWith(document.adoptNode(main));
          document.title = page.title;
          etag = response.headers.get("ETag") || "";
        }
      }
      root.dataset.live = response.ok || response.status === 304 ? "ok" : "offline";
    } catch (error) {
      root.dataset.live = "offline";
    }
    window.setTimeout(refresh, every);
  }

  window.setTimeout(refresh, every);
})();
