// Live consultations with observe and force end (a reason is required and audit-logged).
import { html, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { MODE_WORD, errorSentence, rupees, when } from "/client/format.js";
import { Empty } from "/client/views/shared/components.js";

export function ForceEnd({ id, onDone }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const submit = async (event) => {
    event.preventDefault();
    try {
      await app.api.post(`/admin/consultations/${id}/end`, { reason });
      tell("The consultation was ended.");
      setOpen(false);
      if (onDone) onDone();
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  if (!open) return html`<button class="danger force-end" onClick=${() => setOpen(true)}>Force end</button>`;
  return html`<form class="force-end-form row" onSubmit=${submit}>
    <label class="grow">Reason (kept in the audit log)
      <input name="reason" required minlength="3" maxlength="500" value=${reason}
        onInput=${(e) => setReason(e.target.value)} /></label>
    <button class="danger">End it now</button>
    <button type="button" class="secondary" onClick=${() => setOpen(false)}>Keep it</button>
  </form>`;
}

export function LiveList({ items, onChange }) {
  if (!items.length) return html`<${Empty}>Nobody is in a consultation right now.<//>`;
  return html`<ul class="cards" id="live">${items.map((c) => html`<li class="card live" key=${c.id} data-id=${c.id}>
    <div class="line"><strong>${c.caller.name} → ${c.astrologer.name}</strong>
      <span class=${`tag ${c.status}`}>${c.status === "active" ? "Live" : "Waiting"}</span></div>
    <div class="muted small">${MODE_WORD[c.mode]} · since ${when(c.started_at || c.requested_at)} ·
      ${c.minutes_charged} min · ${rupees(c.charged_paise)}</div>
    <div class="row">
      <a class="button secondary" href=${`/app/admin/consultations/${c.id}`}>Details</a>
      ${c.status === "active" ? html`<a class="button secondary observe" href=${`/app/consult/${c.id}`}>Observe</a>` : null}
      <${ForceEnd} id=${c.id} onDone=${onChange} />
    </div>
  </li>`)}</ul>`;
}
