// Money pieces shared by the caller's wallet and the astrologer's earnings.
import { html, useState } from "/client/lib/html.js";
import { rupees, toPaise, when } from "/client/format.js";
import { Empty } from "/client/views/shared/components.js";

const KIND_WORD = {
  recharge: "Recharge", charge: "Consultation minute", charge_reversal: "Minute given back",
  refund: "Refund", payout: "Payout", promotion: "Promotion", gateway_refund: "Payment refunded",
};

export function Ledger({ items }) {
  if (!items.length) return html`<${Empty}>No transactions yet.<//>`;
  return html`<ul class="list ledger">${items.map((t) => html`<li class="item">
    <span class="line"><span>${KIND_WORD[t.kind] || t.kind}</span>
      <strong class=${t.amount_paise < 0 ? "debit" : "credit"}>${t.amount_paise < 0 ? "−" : "+"}${rupees(Math.abs(t.amount_paise))}</strong></span>
    <span class="line muted small"><span>${when(t.created_at)}</span>
      ${t.consultation_id ? html`<a href=${`/app/history/${t.consultation_id}`}>Receipt</a>` : null}</span>
  </li>`)}</ul>`;
}

// An amount in rupees: a ₹ prefix, whole rupees or paise after a point, checked before submit.
export function RupeeForm({ id, label, button, initial = "", min = 100, max, onSubmit, presets = [], children }) {
  const [value, setValue] = useState(initial);
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const paise = toPaise(value);
    if (paise === null || paise < min || (max && paise > max)) {
      setProblem(`Enter an amount from ${rupees(min)}${max ? ` to ${rupees(max)}` : ""}.`);
      return;
    }
    setProblem("");
    setBusy(true);
    try { await onSubmit(paise); } finally { setBusy(false); }
  };
  return html`<form class="rupee-form" id=${id} onSubmit=${submit} novalidate>
    <label for=${`${id}-amount`}>${label}</label>
    <div class="row">
      <span class="rupee-input"><span aria-hidden="true">₹</span>
        <input id=${`${id}-amount`} name="amount" inputmode="decimal" autocomplete="off" value=${value}
          aria-describedby=${`${id}-problem`} aria-invalid=${problem ? "true" : "false"}
          onInput=${(e) => setValue(e.target.value)} /></span>
      <button disabled=${busy}>${button}</button>
    </div>
    ${presets.length ? html`<div class="chips">${presets.map((r) => html`<button type="button"
        class="chip" onClick=${() => setValue(String(r))}>₹${r}</button>`)}</div>` : null}
    ${children}
    <p class="problem" id=${`${id}-problem`} role="alert">${problem}</p>
  </form>`;
}
