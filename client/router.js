// A tiny router on real URLs (History API): every screen has a path under /app/, links are
// ordinary <a href> elements, the back button works and a reload lands on the same screen.
import { store } from "/client/store.js";

export function navigate(path, { replace = false } = {}) {
  if (path === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"]({ navigated: true }, "", path);
  store.set({ path, notice: null });
  window.scrollTo(0, 0);
}

// Match "/app/consult/:id" against a path; returns the parameters or null.
export function match(pattern, path) {
  const names = [];
  const source = pattern.replace(/:([a-z]+)/g, (_, name) => { names.push(name); return "([^/?]+)"; });
  const found = new RegExp(`^${source}/?(?:\\?.*)?$`).exec(path);
  if (!found) return null;
  return Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])]));
}

export function query() { return new URLSearchParams(location.search); }

export function startRouter() {
  window.addEventListener("popstate", () => store.set({ path: location.pathname + location.search }));
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='/app']");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey
        || event.shiftKey || link.target) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
}
