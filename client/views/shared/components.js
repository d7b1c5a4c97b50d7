// Small pieces every screen uses: the header, the notice line, empty states, consultation lists.
import { html, useState } from "/client/lib/html.js";
import { useStore } from "/client/store.js";
import { app, signOut } from "/client/session.js";
import { tell } from "/client/store.js";
import { MODE_WORD, ROLE_WORD, endWord, errorSentence, rupees, when } from "/client/format.js";

const NAV = {
  user: [["/app", "Astrologers"], ["/app/wallet", "Wallet"], ["/app/history", "History"]],
  consultant: [["/app", "Console"], ["/app/earnings", "Earnings"], ["/app/profile", "Profile"],
               ["/app/history", "History"]],
  admin: [["/app/admin", "Dashboard"], ["/app/admin/consultations", "Consultations"],
          ["/app/admin/users", "Users"], ["/app/admin/payouts", "Payouts"], ["/app/admin/audit", "Audit log"]],
};

function current(path, href) {
  const bare = path.split("?")[0];
  return bare === href || (href !== "/app" && href !== "/app/admin" && bare.startsWith(href + "/"));
}

export function Header() {
  const { me, wallet, path } = useStore();
  const [open, setOpen] = useState(false);
  if (!me) {
    return html`<header class="bar"><a class="brand" href="/app">kundlinow</a></header>`;
  }
  const links = NAV[me.role] || [];
  return html`<header class="bar">
    <a class="brand" href=${links[0][0]}>kundlinow</a>
    ${me.role === "user" && wallet ? html`<a class="pill" id="balance" href="/app/wallet"
        aria-label=${`Wallet balance ${rupees(wallet.available_paise)}`}>${rupees(wallet.available_paise)}</a>` : null}
    <button class="menu-button" aria-expanded=${open} aria-controls="nav"
      onClick=${() => setOpen(!open)}>Menu</button>
    <nav id="nav" class=${open ? "open" : ""} aria-label="Main" onClick=${() => setOpen(false)}>
      ${links.map(([href, label]) => html`<a href=${href}
          aria-current=${current(path, href) ? "page" : null}>${label}</a>`)}
      <span class="who" id="who">${me.display_name} · ${ROLE_WORD[me.role]}</span>
      <button class="link" id="logout" onClick=${signOut}>Log out</button>
    </nav>
  </header>`;
}

export function Notice() {
  const { notice } = useStore();
  return html`<div id="notice" class=${notice ? `notice ${notice.kind}` : "notice"}
    role=${notice && notice.kind === "error" ? "alert" : "status"} aria-live="polite"
    hidden=${!notice}>${notice ? notice.text : ""}</div>`;
}

export function Empty({ children }) {
  return html`<p class="empty muted">${children}</p>`;
}

export function Loading() {
  return html`<p class="muted" aria-busy="true">Loading…</p>`;
}

// A list of consultations (history, admin search, a user's consultations).
export function ConsultationList({ items, hrefOf, show = "both" }) {
  if (!items.length) return html`<${Empty}>No consultations yet.<//>`;
  return html`<ul class="list consultations">${items.map((c) => html`<li>
    <a class="item" href=${hrefOf(c)} data-id=${c.id}>
      <span class="line">
        <strong>${show === "astrologer" ? c.astrologer.name : show === "caller" ? c.caller.name
          : `${c.caller.name} → ${c.astrologer.name}`}</strong>
        <span class=${`tag ${c.status}`}>${c.status === "ended" ? endWord(c.end_reason) : c.status === "active" ? "Live" : "Waiting"}</span>
      </span>
      <span class="line muted">
        <span>${MODE_WORD[c.mode]} · ${when(c.requested_at)}</span>
        <span>${c.minutes_charged} min · ${rupees(c.charged_paise)}${c.refunded_paise ? ` (refunded ${rupees(c.refunded_paise)})` : ""}</span>
      </span>
    </a></li>`)}</ul>`;
}

// The caller rates a finished, paid consultation once (1-5 stars).
export function Rating({ id, initial = 0 }) {
  const [stars, setStars] = useState(initial || 0);
  const rate = async (value) => {
    try { await app.api.post(`/consultations/${id}/rating`, { stars: value }); setStars(value); }
    catch (error) { tell(errorSentence(error), "error"); }
  };
  if (stars) return html`<p id="rating" role="status">Thanks for rating ${"★".repeat(stars)}</p>`;
  return html`<div id="rating" class="rating" role="group" aria-label="Rate this consultation">
    <span>How was it?</span>
    ${[1, 2, 3, 4, 5].map((n) => html`<button class="secondary star" data-stars=${n}
      aria-label=${`${n} star${n === 1 ? "" : "s"}`} onClick=${() => rate(n)}>${"★".repeat(n)}</button>`)}
  </div>`;
}
