// The one store: REST replies and socket events write it, views render from it.
import { useEffect, useReducer } from "/client/lib/html.js";

const listeners = new Set();

export const store = {
  state: {
    me: null,          // the signed-in account (GET /me)
    wallet: null,      // the caller's wallet (GET /wallet), kept current by pushes
    statuses: {},      // astrologer id -> online/busy/away/offline, pushed by the socket
    requests: {},      // an astrologer's pending requests, by consultation id
    notice: null,      // { text, kind: "info" | "error" } shown under the header
    waitlist: null,    // { consultant_id, name, position } or { status: "offered", … }
    path: location.pathname + location.search,
  },
  set(patch) {
    this.state = { ...this.state, ...(typeof patch === "function" ? patch(this.state) : patch) };
    for (const listener of listeners) listener();
  },
  subscribe(listener) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

// Re-render the calling component whenever the store changes; returns the current state.
export function useStore() {
  const [, redraw] = useReducer((n) => n + 1, 0);
  const rendered = store.state;
  useEffect(() => {
    if (store.state !== rendered) redraw(); // changed between the render and this effect
    return store.subscribe(redraw);
  }, []);
  return store.state;
}

// A line under the header. Information fades after a few seconds (on a phone in a call it
// would push the controls down); errors stay until the next action or screen.
const INFO_MS = 6000;
let fade = null;

export function tell(text, kind = "info") {
  clearTimeout(fade);
  const notice = text ? { text, kind } : null;
  store.set({ notice });
  if (notice && kind === "info") {
    fade = setTimeout(() => { if (store.state.notice === notice) store.set({ notice: null }); }, INFO_MS);
  }
}
