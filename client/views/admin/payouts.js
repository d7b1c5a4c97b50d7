// Admin: the payout queue — approve or decline astrologers' requests.
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { errorSentence, rupees, when } from "/client/format.js";
import { Empty, Loading } from "/client/views/shared/components.js";

export function Payouts() {
  const [items, setItems] = useState(null);
  const [names, setNames] = useState({});
  const load = async () => {
    try {
      const page = await app.api.get("/admin/payouts?state=requested");
      setItems(page.items);
      const found = await Promise.all(page.items.map((p) => app.api.get(`/admin/users/${p.consultant_id}`).catch(() => null)));
      setNames(Object.fromEntries(found.filter(Boolean).map((u) => [u.id, u])));
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  useEffect(() => { load(); }, []);
  const decide = (p, verb) => async () => {
    try {
      await app.api.post(`/admin/payouts/${p.id}/${verb}`, verb === "reject" ? { reason: "declined by admin" } : {});
      tell(verb === "approve" ? `Payout of ${rupees(p.amount_paise)} approved.` : "Payout declined.");
      await load();
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  return html`<section>
    <h1>Payout requests</h1>
    ${items === null ? html`<${Loading} />` : items.length ? html`<ul class="cards" id="payout-queue">${items.map((p) => html`
      <li class="card payout" data-id=${p.id}>
        <div class="line"><strong>${names[p.consultant_id] ? names[p.consultant_id].name : "Astrologer"}</strong>
          <strong>${rupees(p.amount_paise)}</strong></div>
        <div class="muted small">${names[p.consultant_id] ? names[p.consultant_id].email : ""} · ${when(p.requested_at)}</div>
        <div class="row"><button class="approve" onClick=${decide(p, "approve")}>Approve</button>
          <button class="secondary" onClick=${decide(p, "reject")}>Decline</button></div>
      </li>`)}</ul>` : html`<${Empty}>No payout is waiting.<//>`}
  </section>`;
}
