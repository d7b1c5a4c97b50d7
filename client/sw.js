// The service worker: the app shell (HTML, modules, styles, icons) is cached so the app opens
// offline and installs as a PWA. API calls and the socket always go to the network.
const VERSION = "kundlinow-shell-1";
const SHELL = [
  "/app", "/client/style.css", "/client/main.js", "/client/api.js", "/client/call.js",
  "/client/store.js", "/client/router.js", "/client/session.js", "/client/format.js",
  "/client/lib/html.js", "/client/vendor/preact.mjs", "/client/vendor/preact-hooks.mjs",
  "/client/vendor/htm.mjs", "/client/icons/icon.svg", "/client/icons/icon-192.png",
  "/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// Network first (a deploy shows at once), the cache when offline. Only the shell's own files.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  const page = event.request.mode === "navigate" && url.pathname.startsWith("/app");
  if (!page && !url.pathname.startsWith("/client/") && url.pathname !== "/manifest.webmanifest") return;
  event.respondWith(fetch(event.request).then((response) => {
    if (response.ok && !page) {
      const copy = response.clone();
      caches.open(VERSION).then((cache) => cache.put(event.request, copy));
    }
    return response;
  }).catch(() => caches.match(page ? "/app" : event.request)));
});
