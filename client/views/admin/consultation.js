// Admin: one consultation — who, when, charges, the session log timeline, the chat transcript,
// the recordings, refunds in rupees (whole, chosen minutes or an amount), observe, force end.
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { MODE_WORD, describe, endSentence, errorSentence, rupees, toPaise, when, words } from "/client/format.js";
import { Empty, Loading } from "/client/views/shared/components.js";
import { ChargesTable } from "/client/views/shared/history.js";
import { ForceEnd } from "/client/views/admin/live.js";


// Connection plumbing: many lines per call, shown on request.
const TECHNICAL = /^(socket_|ice_|dtls_|media_state|joined|left|first_media)/;

function Timeline({ items }) {
  const [all, setAll] = useState(false);
  if (items === undefined) return html`<${Loading} />`;
  if (items === null) return html`<${Empty}>The session log is not available on this server yet.<//>`;
  if (!items.length) return html`<${Empty}>Nothing was logged.<//>`;
  const hidden = items.filter((e) => TECHNICAL.test(e.kind)).length;
  const shown = all ? items : items.filter((e) => !TECHNICAL.test(e.kind));
  return html`${hidden ? html`<label class="check small"><input type="checkbox" id="timeline-all" checked=${all}
      onChange=${(e) => setAll(e.target.checked)} /> Show connection details (${hidden})</label>` : null}
    <ol class="timeline" id="timeline">${shown.map((e) => html`<li>
    <time datetime=${e.at}>${new Date(e.at).toLocaleTimeString("en-IN")}</time>
    <span class="kind">${words(e.kind)}</span>
    ${e.data && Object.keys(e.data).length ? html`<span class="muted small data">${describe(e.data)}</span>` : null}
  </li>`)}</ol>`;
}

function Transcript({ items, c }) {
  if (items === undefined) return html`<${Loading} />`;
  if (!items.length) return html`<${Empty}>No chat messages.<//>`;
  const name = (m) => (m.sender_role === "consultant" || m.sender_id === c.astrologer.id ? c.astrologer.name : c.caller.name);
  return html`<ol class="transcript" id="transcript">${items.map((m) => html`<li>
    <span class="muted small">${new Date(m.at || m.created_at).toLocaleTimeString("en-IN")} · ${name(m)}</span>
    <span>${m.body !== undefined ? m.body : m.kind === "image" ? "[image]" : m.text}</span></li>`)}</ol>`;
}

function Recordings({ items }) {
  if (items === undefined) return html`<${Loading} />`;
  if (items === null) return html`<${Empty}>Recordings are not available on this server yet.<//>`;
  if (!items.length) return html`<${Empty}>This consultation was not recorded.<//>`;
  const sorted = [...items].sort((a, b) => (a.kind === "review" ? -1 : 0) - (b.kind === "review" ? -1 : 0));
  return html`<ul class="recordings" id="recordings">${sorted.map((r) => html`<li class="card" key=${r.id}
      data-kind=${r.kind} data-party=${r.party}>
    <div class="line"><strong>${r.kind === "review" ? "Both sides (review copy)" : `${r.party} · ${r.kind}`}</strong>
      <span class="muted small">${r.status} · ${Math.round((r.duration_ms || 0) / 1000)} s</span></div>
    ${r.url && r.kind !== "audio" ? html`<video controls preload="metadata" src=${r.url} class="recording"
        aria-label=${`Recording: ${r.kind === "review" ? "both sides" : r.party}`}></video>`
      : r.url ? html`<audio controls preload="metadata" src=${r.url} aria-label=${`Audio of ${r.party}`}></audio>` : null}
  </li>`)}</ul>`;
}

function Refund({ c, charges, onDone }) {
  const paid = c.charged_paise - c.refunded_paise;
  const [how, setHow] = useState("amount");
  const [minutes, setMinutes] = useState([]);
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  if (paid <= 0) return html`<p class="muted">Nothing left to refund.</p>`;
  const chosen = charges.filter((m) => minutes.includes(m.minute) && m.source === "wallet" && !m.reversed)
    .reduce((sum, m) => sum + m.amount_paise, 0);
  const paise = how === "all" ? paid : how === "minutes" ? chosen : toPaise(amount);
  const submit = async (event) => {
    event.preventDefault();
    if (!paise || paise > paid) { tell(`Choose an amount from ₹0.01 to ${rupees(paid)}.`, "error"); return; }
    try {
      await app.api.post(`/admin/consultations/${c.id}/refund`, { amount_paise: paise, reason });
      tell(`${rupees(paise)} refunded to ${c.caller.name}.`);
      setAmount(""); setReason(""); setMinutes([]);
      onDone();
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  const pick = (minute) => setMinutes(minutes.includes(minute) ? minutes.filter((m) => m !== minute) : [...minutes, minute]);
  return html`<form class="stack refund" id="refund" onSubmit=${submit}>
    <fieldset><legend>Refund to the caller's wallet (up to ${rupees(paid)})</legend>
      <label class="check"><input type="radio" name="how" checked=${how === "all"} onChange=${() => setHow("all")} /> The whole consultation (${rupees(paid)})</label>
      <label class="check"><input type="radio" name="how" checked=${how === "minutes"} onChange=${() => setHow("minutes")} /> Chosen minutes</label>
      ${how === "minutes" ? html`<div class="chips">${charges.filter((m) => m.source === "wallet" && !m.reversed).map((m) => html`
        <label class="chip check"><input type="checkbox" checked=${minutes.includes(m.minute)} onChange=${() => pick(m.minute)} />
          Minute ${m.minute} (${rupees(m.amount_paise)})</label>`)}</div>` : null}
      <label class="check"><input type="radio" name="how" checked=${how === "amount"} onChange=${() => setHow("amount")} /> An amount</label>
      ${how === "amount" ? html`<label>Amount<span class="rupee-input"><span aria-hidden="true">₹</span>
        <input name="amount" id="refund-amount" inputmode="decimal" value=${amount} onInput=${(e) => setAmount(e.target.value)} /></span></label>` : null}
    </fieldset>
    <label>Reason (the caller's receipt shows it)<input name="reason" id="refund-reason" required minlength="3"
      maxlength="500" value=${reason} onInput=${(e) => setReason(e.target.value)} /></label>
    <button>Refund ${paise ? rupees(paise) : ""}</button>
  </form>`;
}

export function ConsultationDetail({ id }) {
  const [receipt, setReceipt] = useState(null);
  const [log, setLog] = useState(undefined);
  const [transcript, setTranscript] = useState(undefined);
  const [recordings, setRecordings] = useState(undefined);
  const load = () => app.api.get(`/consultations/${id}/receipt`).then(setReceipt)
    .catch((error) => tell(errorSentence(error), "error"));
  useEffect(() => {
    load();
    const api = app.api;
    api.optional("/admin/consultations/{id}/log", `/admin/consultations/${id}/log`)
      .then((r) => setLog(r ? r.items : null)).catch(() => setLog(null));
    api.optional("/admin/consultations/{id}/transcript", `/admin/consultations/${id}/transcript`)
      .then((r) => r || api.get(`/consultations/${id}/messages?limit=200`).then((m) => ({ items: m.messages })))
      .then((r) => setTranscript(r.items)).catch(() => setTranscript([]));
    api.optional("/admin/consultations/{id}/recordings", `/admin/consultations/${id}/recordings`)
      .then((r) => setRecordings(r ? r.items : null)).catch(() => setRecordings(null));
  }, [id]);
  if (!receipt) return html`<${Loading} />`;
  const c = receipt.consultation;
  return html`<section class="detail">
    <h1>${MODE_WORD[c.mode]}: ${c.caller.name} → ${c.astrologer.name}</h1>
    <div class="card">
      <dl class="facts">
        <dt>Caller</dt><dd><a href=${`/app/admin/users/${c.caller.id}`}>${c.caller.name}</a> <span class="muted">${c.caller.email}</span></dd>
        <dt>Astrologer</dt><dd><a href=${`/app/admin/users/${c.astrologer.id}`}>${c.astrologer.name}</a> <span class="muted">${c.astrologer.email}</span></dd>
        <dt>Requested</dt><dd>${when(c.requested_at)}</dd>
        <dt>Started</dt><dd>${when(c.started_at) || "—"}</dd>
        <dt>Ended</dt><dd>${c.ended_at ? `${when(c.ended_at)} — ${endSentence(c.end_reason, "consultant")}` : "Not yet"}</dd>
        <dt>Minutes</dt><dd>${c.minutes_charged} at ${rupees(c.rate_paise)}/min</dd>
        <dt>Charged</dt><dd id="detail-charged">${rupees(c.charged_paise)}</dd>
        <dt>Refunded</dt><dd id="detail-refunded">${rupees(c.refunded_paise)}</dd>
      </dl>
      ${c.status !== "ended" ? html`<div class="row">
        ${c.status === "active" ? html`<a class="button secondary" href=${`/app/consult/${c.id}`}>Observe</a>` : null}
        <${ForceEnd} id=${c.id} onDone=${load} /></div>` : null}
    </div>
    <div class="grid two">
      <div><h2>Session log</h2><${Timeline} items=${log} /></div>
      <div><h2>Chat transcript</h2><${Transcript} items=${transcript} c=${c} /></div>
    </div>
    <h2>Recordings</h2><${Recordings} items=${recordings} />
    <h2>Charges</h2><${ChargesTable} charges=${receipt.charges} share=${false} />
    <h2>Refund</h2><div class="card"><${Refund} c=${c} charges=${receipt.charges} onDone=${load} /></div>
  </section>`;
}
