// The astrologer's earnings and payouts (minimum ₹1,000; one request pending at a time).
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { errorSentence, rupees, when } from "/client/format.js";
import { Empty, Loading } from "/client/views/shared/components.js";
import { Ledger, RupeeForm } from "/client/views/shared/money.js";

const PAYOUT_MINIMUM_PAISE = 100000;
const PAYOUT_WORD = { requested: "Waiting for approval", approved: "Approved, being paid", rejected: "Declined",
                      posted: "Paid", voided: "Cancelled" };

export function Earnings() {
  const [earnings, setEarnings] = useState(null);
  const [payouts, setPayouts] = useState(null);
  const load = async () => {
    try {
      const [e, p] = await Promise.all([app.api.get("/earnings?limit=50"), app.api.get("/payouts")]);
      setEarnings(e);
      setPayouts(p.items);
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  useEffect(() => { load(); }, []);
  if (!earnings || !payouts) return html`<${Loading} />`;
  const pending = payouts.some((p) => p.state === "requested" || p.state === "approved");
  const request = async (paise) => {
    try {
      await app.api.post("/payouts", { amount_paise: paise });
      tell(`Payout of ${rupees(paise)} requested.`);
      await load();
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  return html`<section>
    <h1>Earnings</h1>
    <div class="card">
      <div class="big" id="earnings">${rupees(earnings.available_paise)}</div>
      <div class="muted small">available${earnings.held_paise ? ` · ${rupees(earnings.held_paise)} reserved for a payout` : ""}</div>
      <h2>Request a payout</h2>
      <ul class="rules small">
        <li>The minimum is ${rupees(PAYOUT_MINIMUM_PAISE)}.</li>
        <li>One request at a time: wait for the last one to be paid or declined.</li>
        <li>An admin approves it; the money then goes to your bank account.</li>
      </ul>
      ${pending ? html`<p class="muted" id="payout-pending">Your payout request is being processed.</p>`
        : html`<${RupeeForm} id="payout" label="Amount" button="Request payout"
            initial=${String(Math.floor(earnings.available_paise / 100))} min=${PAYOUT_MINIMUM_PAISE}
            max=${earnings.available_paise} onSubmit=${request} />`}
    </div>
    <h2>Payouts</h2>
    ${payouts.length ? html`<ul class="list" id="payouts">${payouts.map((p) => html`<li class="item">
      <span class="line"><span>${PAYOUT_WORD[p.state] || p.state}</span><strong>${rupees(p.amount_paise)}</strong></span>
      <span class="muted small">${when(p.requested_at)}</span></li>`)}</ul>` : html`<${Empty}>No payouts yet.<//>`}
    <h2>Earnings entries</h2>
    <${Ledger} items=${earnings.transactions.items} />
  </section>`;
}
