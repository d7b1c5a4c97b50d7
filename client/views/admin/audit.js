// Admin: the audit log, newest first.
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { describe, errorSentence, when, words } from "/client/format.js";
import { Empty, Loading } from "/client/views/shared/components.js";


function subjectLink(e) {
  if (e.subject_type === "consultation") return `/app/admin/consultations/${e.subject_id}`;
  if (e.subject_type === "user") return `/app/admin/users/${e.subject_id}`;
  return null;
}

export function Audit() {
  const [items, setItems] = useState(null);
  const [before, setBefore] = useState(null);
  const load = async (after) => {
    try {
      const page = await app.api.get(`/admin/audit?limit=50${after ? `&before=${after}` : ""}`);
      setItems((old) => (after && old ? [...old, ...page.items] : page.items));
      setBefore(page.next_before);
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  useEffect(() => { load(null); }, []);
  if (items === null) return html`<${Loading} />`;
  return html`<section>
    <h1>Audit log</h1>
    ${items.length ? html`<ul class="list" id="audit">${items.map((e) => html`<li class="item">
      <span class="line"><strong>${words(e.action)}</strong><span class="muted small">${when(e.at)}</span></span>
      <span class="small">${e.actor ? e.actor.name : "System"} · ${subjectLink(e)
        ? html`<a href=${subjectLink(e)}>${e.subject_type}</a>` : e.subject_type}</span>
      <span class="muted small">${describe(e.details)}</span></li>`)}</ul>` : html`<${Empty}>Nothing yet.<//>`}
    ${before ? html`<button class="secondary more" onClick=${() => load(before)}>Show more</button>` : null}
  </section>`;
}
