// The astrologer's console: online/away, incoming requests (caller, mode, price, time left),
// today's earnings at a glance.
import { html, useEffect, useState } from "/client/lib/html.js";
import { store, useStore, tell } from "/client/store.js";
import { app } from "/client/session.js";
import { navigate } from "/client/router.js";
import { MODE_WORD, errorSentence, rupees } from "/client/format.js";
import { Empty } from "/client/views/shared/components.js";
import { BirthChart } from "/client/views/shared/birth.js";

const REQUEST_TIMEOUT_S = 60; // the server's REQUEST_TIMEOUT default (docs/PROTOCOL.md)

function forget(id) {
  store.set((s) => { const requests = { ...s.requests }; delete requests[id]; return { requests }; });
}

function RequestCard({ request }) {
  const [caller, setCaller] = useState(null);
  const [birth, setBirth] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    app.api.get(`/consultations/${request.id}/receipt`)
      .then((r) => { setCaller(r.consultation.caller.name); setBirth(r.consultation.birth_shared); })
      .catch(() => {});
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [request.id]);
  const started = Date.parse(request.requested_at) || request.received_at;
  const left = Math.max(0, Math.round(REQUEST_TIMEOUT_S - (now - started) / 1000));
  const act = (type) => async () => {
    setBusy(true);
    try {
      await app.socket.send(type, { consultation_id: request.id });
      forget(request.id);
      if (type === "accept") navigate(`/app/consult/${request.id}`);
    } catch (error) {
      tell(errorSentence(error), "error");
      forget(request.id);
    }
  };
  return html`<li class="card request" data-id=${request.id} aria-label=${`Request from ${caller || "a caller"}`}>
    <div class="line"><strong class="caller-name">${caller || "A caller"}</strong>
      <span class="countdown" aria-label=${`${left} seconds left to answer`}>${left} s</span></div>
    <div class="muted">${MODE_WORD[request.mode]} · ${rupees(request.rate_paise)}/min</div>
    ${birth ? html`<${BirthChart} consultationId=${request.id} />` : null}
    <div class="row">
      <button class="accept" disabled=${busy} onClick=${act("accept")}>Accept</button>
      <button class="secondary reject" disabled=${busy} onClick=${act("reject")}>Decline</button>
    </div>
  </li>`;
}

export function Console() {
  const { requests, online = true } = useStore();
  const [earnings, setEarnings] = useState(null);
  useEffect(() => {
    app.api.get("/earnings?limit=1").then(setEarnings).catch((error) => tell(errorSentence(error), "error"));
    // Requests that arrived before this page opened (a reload, a second device): pushes only
    // bring new ones.
    app.api.get("/me/consultations?limit=10").then((page) => {
      const waiting = page.items.filter((c) => c.status === "requested");
      store.set((s) => ({ requests: { ...Object.fromEntries(waiting.map((c) => [c.id,
        { id: c.id, mode: c.mode, rate_paise: c.rate_paise, requested_at: c.requested_at }])), ...s.requests } }));
    }).catch(() => {});
  }, []);
  const toggle = async () => {
    const next = !online;
    try {
      await app.socket.send("presence", { status: next ? "online" : "away" });
      store.set({ online: next });
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  const pending = Object.values(requests);
  return html`<section>
    <h1>Console</h1>
    <div class="card line">
      <div><strong>${online ? "You are online" : "You are away"}</strong>
        <div class="muted small">${online ? "Callers can start a consultation with you." : "Callers see you as away."}</div></div>
      <button class="switch" id="availability" aria-pressed=${String(online)} onClick=${toggle}>
        Available</button>
    </div>
    <h2>Incoming requests</h2>
    <ul class="cards" id="requests">
      ${pending.length ? pending.map((r) => html`<${RequestCard} key=${r.id} request=${r} />`)
        : html`<li><${Empty}>Waiting for requests…<//></li>`}
    </ul>
    <div class="card line">
      <div><strong>Earnings</strong><div class="muted small">Available to pay out</div></div>
      <span class="big" id="earnings">${earnings ? rupees(earnings.available_paise) : "…"}</span>
    </div>
    <p><a href="/app/earnings">Earnings and payouts</a> · <a href="/app/profile">Edit your profile</a></p>
  </section>`;
}
