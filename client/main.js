// The kundlinow web app: callers, astrologers and admins. Preact + htm as ES modules, no build.
import { html, render, useEffect } from "/client/lib/html.js";
import { store, useStore } from "/client/store.js";
import { match, navigate, startRouter } from "/client/router.js";
import { resume } from "/client/session.js";
import { Header, Notice } from "/client/views/shared/components.js";
import { Login } from "/client/views/login.js";
import { Consult } from "/client/views/shared/consult.js";
import { History, Receipt } from "/client/views/shared/history.js";
import { Browse } from "/client/views/caller/browse.js";
import { AstrologerPage } from "/client/views/caller/astrologer.js";
import { Wallet } from "/client/views/caller/wallet.js";
import { Console } from "/client/views/astrologer/console.js";
import { Earnings } from "/client/views/astrologer/earnings.js";
import { Profile } from "/client/views/astrologer/profile.js";
import { Dashboard } from "/client/views/admin/dashboard.js";
import { Consultations } from "/client/views/admin/consultations.js";
import { ConsultationDetail } from "/client/views/admin/consultation.js";
import { Users, UserDetail } from "/client/views/admin/users.js";
import { Payouts } from "/client/views/admin/payouts.js";
import { Audit } from "/client/views/admin/audit.js";

// [path pattern, roles allowed, view]. The first match wins.
const ROUTES = [
  ["/app/consult/:id", ["user", "consultant", "admin"], Consult],
  ["/app/history/:id", ["user", "consultant"], Receipt],
  ["/app/history", ["user", "consultant"], History],
  ["/app/astrologers/:id", ["user"], AstrologerPage],
  ["/app/wallet", ["user"], Wallet],
  ["/app/earnings", ["consultant"], Earnings],
  ["/app/profile", ["consultant"], Profile],
  ["/app/admin/consultations/:id", ["admin"], ConsultationDetail],
  ["/app/admin/consultations", ["admin"], Consultations],
  ["/app/admin/users/:id", ["admin"], UserDetail],
  ["/app/admin/users", ["admin"], Users],
  ["/app/admin/payouts", ["admin"], Payouts],
  ["/app/admin/audit", ["admin"], Audit],
  ["/app/admin", ["admin"], Dashboard],
  ["/app", ["user"], Browse],
  ["/app", ["consultant"], Console],
];

const HOME = { user: "/app", consultant: "/app", admin: "/app/admin" };

function Screen() {
  const { me, path } = useStore();
  if (!me) {
    if (!path.startsWith("/app/login")) {
      const next = path.split("?")[0] !== "/app" ? `?next=${encodeURIComponent(path)}` : "";
      queueMicrotask(() => navigate(`/app/login${next}`, { replace: true }));
      return null;
    }
    return html`<${Login} />`;
  }
  for (const [pattern, roles, View] of ROUTES) {
    const params = match(pattern, path);
    if (params && roles.includes(me.role)) return html`<${View} key=${path.split("?")[0]} ...${params} />`;
  }
  queueMicrotask(() => navigate(HOME[me.role], { replace: true }));
  return null;
}

// After a screen change, keyboard and screen-reader focus moves to the new screen's heading
// (as a page load would), not left on the link that was pressed.
function useFocusOnNavigate(path) {
  useEffect(() => {
    let tries = 0;
    const focus = () => {
      const heading = document.querySelector("main h1");
      if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
      else if (tries++ < 20) setTimeout(focus, 100); // the screen is still loading its data
    };
    if (history.state && history.state.navigated) focus();
  }, [path]);
}

function App() {
  const { path } = useStore();
  useFocusOnNavigate(path);
  return html`<a class="skip" href="#view">Skip to content</a>
    <${Header} />
    <${Notice} />
    <main id="view" tabindex="-1"><${Screen} /></main>`;
}

(async () => {
  startRouter();
  if (location.pathname === "/") {
    history.replaceState({}, "", "/app" + location.search);
    store.set({ path: location.pathname + location.search });
  }
  await resume();
  render(html`<${App} />`, document.getElementById("app"));
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
})();
