// A caller's or astrologer's consultations, and the receipt of one.
import { html, useEffect, useState } from "/client/lib/html.js";
import { useStore, tell } from "/client/store.js";
import { app } from "/client/session.js";
import { MODE_WORD, endSentence, errorSentence, rupees, when } from "/client/format.js";
import { ConsultationList, Empty, Loading, Rating } from "/client/views/shared/components.js";

export function usePages(path) {
  const [items, setItems] = useState(null);
  const [cursor, setCursor] = useState(null);
  const load = async (after) => {
    try {
      const sep = path.includes("?") ? "&" : "?";
      const page = await app.api.get(after ? `${path}${sep}cursor=${encodeURIComponent(after)}` : path);
      setItems((old) => (after && old ? [...old, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  useEffect(() => { setItems(null); load(null); }, [path]);
  return { items, more: cursor ? () => load(cursor) : null, reload: () => load(null) };
}

export function MoreButton({ more }) {
  return more ? html`<button class="secondary more" onClick=${more}>Show more</button>` : null;
}

export function History() {
  const { me } = useStore();
  const { items, more } = usePages("/me/consultations?limit=20");
  return html`<section>
    <h1>Your consultations</h1>
    ${items === null ? html`<${Loading} />` : html`<${ConsultationList} items=${items}
      show=${me.role === "user" ? "astrologer" : "caller"}
      hrefOf=${(c) => (c.status === "ended" ? `/app/history/${c.id}` : `/app/consult/${c.id}`)} />`}
    <${MoreButton} more=${more} />
  </section>`;
}

export function ChargesTable({ charges, share }) {
  if (!charges.length) return html`<${Empty}>No minutes were charged.<//>`;
  return html`<table class="charges"><caption class="sr-only">Charges</caption>
    <thead><tr><th scope="col">Minute</th><th scope="col">Charged</th>${share ? html`<th scope="col">Your share</th>` : null}</tr></thead>
    <tbody>${charges.map((m) => html`<tr class=${m.reversed ? "reversed" : ""}>
      <td>${m.minute}</td><td>${rupees(m.amount_paise)}${m.source === "promotion" ? " (free)" : ""}${m.reversed ? " (given back)" : ""}</td>
      ${share ? html`<td>${rupees(m.your_share_paise)}</td>` : null}</tr>`)}</tbody></table>`;
}

export function Receipt({ id }) {
  const { me } = useStore();
  const [receipt, setReceipt] = useState(null);
  useEffect(() => {
    app.api.get(`/consultations/${id}/receipt`).then(setReceipt).catch((error) => tell(errorSentence(error), "error"));
  }, [id]);
  if (!receipt) return html`<${Loading} />`;
  const c = receipt.consultation;
  const other = me.role === "user" ? c.astrologer.name : c.caller.name;
  return html`<section class="receipt" id="receipt">
    <h1>Receipt</h1>
    <div class="card">
      <p><strong>${MODE_WORD[c.mode]} with ${other}</strong></p>
      <p class="muted">${when(c.started_at || c.requested_at)}${c.end_reason ? ` · ${endSentence(c.end_reason, me.role)}` : ""}</p>
      <dl class="facts">
        <dt>Minutes</dt><dd id="receipt-minutes">${c.minutes_charged}</dd>
        <dt>Rate</dt><dd>${rupees(c.rate_paise)} a minute</dd>
        <dt>Charged</dt><dd id="receipt-charged">${rupees(c.charged_paise)}</dd>
        ${c.refunded_paise ? html`<dt>Refunded</dt><dd id="receipt-refunded">${rupees(c.refunded_paise)}</dd>` : null}
        <dt>${me.role === "user" ? "You paid" : "Caller paid"}</dt><dd>${rupees(c.charged_paise - c.refunded_paise)}</dd>
      </dl>
      <h2>Charges</h2>
      <${ChargesTable} charges=${receipt.charges} share=${me.role === "consultant"} />
      ${receipt.refunds.length ? html`<h2>Refunds</h2><ul class="list">${receipt.refunds.map((r) => html`<li class="item">
        <span class="line"><span>${r.reason}</span><strong>${rupees(r.amount_paise)}</strong></span>
        <span class="muted small">${when(r.at)}</span></li>`)}</ul>` : null}
      ${me.role === "user" && c.status === "ended" && c.minutes_charged > 0
        ? html`<${Rating} id=${id} initial=${c.stars} />` : null}
    </div>
    <a href="/app/history">All consultations</a>
  </section>`;
}
