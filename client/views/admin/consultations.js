// Admin: find consultations by caller or astrologer (e-mail or name), status, mode and dates.
// Uses the consultation search (GET /admin/consultations) when the server has it; until then it
// finds the matching users and lists their consultations.
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { navigate, query } from "/client/router.js";
import { errorSentence } from "/client/format.js";
import { ConsultationList, Loading } from "/client/views/shared/components.js";
import { MoreButton } from "/client/views/shared/history.js";

const FIELDS = ["caller", "astrologer", "status", "mode", "from", "to"];

async function fallbackSearch(params) {
  const who = params.get("caller") || params.get("astrologer");
  if (!who) return { items: [], next_cursor: null, limited: true };
  const users = await app.api.get(`/admin/users?q=${encodeURIComponent(who)}&limit=5`);
  const pages = await Promise.all(users.items.map((u) => app.api.get(`/admin/users/${u.id}/consultations?limit=50`)));
  const seen = new Map();
  for (const page of pages) for (const c of page.items) seen.set(c.id, c);
  const items = [...seen.values()].filter((c) => (!params.get("status") || c.status === params.get("status"))
    && (!params.get("mode") || c.mode === params.get("mode")));
  items.sort((a, b) => b.requested_at.localeCompare(a.requested_at));
  return { items, next_cursor: null, limited: true };
}

export function Consultations() {
  const params = query();
  const [result, setResult] = useState(null);
  const search = async (cursor) => {
    try {
      if (await app.api.has("/admin/consultations")) {
        const q = new URLSearchParams([...params].filter(([k, v]) => FIELDS.includes(k) && v));
        if (cursor) q.set("cursor", cursor);
        const page = await app.api.get(`/admin/consultations?${q}`);
        setResult((old) => ({ ...page, items: cursor && old ? [...old.items, ...page.items] : page.items }));
      } else {
        setResult(await fallbackSearch(params));
      }
    } catch (error) { tell(errorSentence(error), "error"); setResult({ items: [], next_cursor: null }); }
  };
  useEffect(() => { setResult(null); search(null); }, [location.search]);
  const submit = (event) => {
    event.preventDefault();
    const q = new URLSearchParams([...new FormData(event.target)].filter(([, v]) => v));
    navigate(`/app/admin/consultations?${q}`);
  };
  return html`<section>
    <h1>Consultations</h1>
    <form class="filters card" id="consultation-search" onSubmit=${submit}>
      <label>Caller (e-mail or name)<input name="caller" value=${params.get("caller") || ""} /></label>
      <label>Astrologer (e-mail or name)<input name="astrologer" value=${params.get("astrologer") || ""} /></label>
      <label>Status<select name="status" value=${params.get("status") || ""}><option value="">Any</option>
        <option value="requested">Waiting</option><option value="active">Live</option><option value="ended">Ended</option></select></label>
      <label>Mode<select name="mode" value=${params.get("mode") || ""}><option value="">Any</option>
        <option value="chat">Chat</option><option value="voice">Voice</option><option value="video">Video</option></select></label>
      <label>From<input type="date" name="from" value=${params.get("from") || ""} /></label>
      <label>To<input type="date" name="to" value=${params.get("to") || ""} /></label>
      <button>Search</button>
    </form>
    ${result === null ? html`<${Loading} />` : html`
      ${result.limited ? html`<p class="muted small">Consultations of the users whose e-mail or name matches.</p>` : null}
      <${ConsultationList} items=${result.items} hrefOf=${(c) => `/app/admin/consultations/${c.id}`} />
      <${MoreButton} more=${result.next_cursor ? () => search(result.next_cursor) : null} />`}
  </section>`;
}
