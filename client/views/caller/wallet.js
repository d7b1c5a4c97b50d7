// The caller's wallet: balance, recharge (Razorpay Checkout, or the simulator in development)
// and the transactions.
import { html, useEffect, useState } from "/client/lib/html.js";
import { useStore, tell } from "/client/store.js";
import { app, recharge } from "/client/session.js";
import { errorSentence, rupees } from "/client/format.js";
import { Loading } from "/client/views/shared/components.js";
import { Ledger, RupeeForm } from "/client/views/shared/money.js";

export function RechargeForm({ id = "recharge", initial = "500", presets = [], onDone }) {
  const go = async (paise) => {
    try { await recharge(paise); if (onDone) onDone(paise); } catch (error) { tell(errorSentence(error), "error"); }
  };
  return html`<${RupeeForm} id=${id} label="Add money" button="Recharge" initial=${initial}
      min=${100} max=${10000000} onSubmit=${go} presets=${presets} />`;
}

export function Wallet() {
  const { wallet } = useStore();
  const [ledger, setLedger] = useState(null);
  const load = () => app.api.get("/wallet/transactions?limit=50").then((page) => setLedger(page.items))
    .catch((error) => tell(errorSentence(error), "error"));
  useEffect(() => { load(); }, [wallet && wallet.balance_paise]);
  return html`<section>
    <h1>Wallet</h1>
    <div class="card">
      <div class="big" id="available">${wallet ? rupees(wallet.available_paise) : "…"}</div>
      <div class="muted small">${wallet && wallet.held_paise ? `${rupees(wallet.held_paise)} is reserved for a consultation.` : "Available to spend"}</div>
      <${RechargeForm} presets=${[100, 200, 500, 1000]} />
    </div>
    <h2>Transactions</h2>
    ${ledger === null ? html`<${Loading} />` : html`<${Ledger} items=${ledger} />`}
  </section>`;
}
