// Caller home: find an astrologer. Statuses are live (pushed by the socket), never polled.
import { html, useEffect, useState } from "/client/lib/html.js";
import { useStore, tell } from "/client/store.js";
import { app, watchAstrologers } from "/client/session.js";
import { STATUS_WORD, errorSentence, rupees } from "/client/format.js";
import { Empty, Loading } from "/client/views/shared/components.js";
import { QueueBanner, StartButtons } from "/client/views/caller/start.js";
import { BirthProfiles } from "/client/views/shared/birth.js";

const ORDER = { online: 0, busy: 1, away: 2, offline: 3 };

export function Avatar({ astrologer }) {
  return astrologer.photo_url
    ? html`<img class="avatar" src=${astrologer.photo_url} alt="" width="56" height="56" />`
    : html`<span class="avatar" aria-hidden="true">${astrologer.display_name.slice(0, 1).toUpperCase()}</span>`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`status ${status}`}>${STATUS_WORD[status] || status}</span>`;
}

function Card({ astrologer, status, wallet }) {
  return html`<li class="card consultant" data-id=${astrologer.id}>
    <div class="who-line">
      <${Avatar} astrologer=${astrologer} />
      <div class="grow">
        <a class="name" href=${`/app/astrologers/${astrologer.id}`}>${astrologer.display_name}</a>
        ${astrologer.verified ? html` <span class="verified" title="Verified by kundlinow">✓ Verified</span>` : null}
        <div class="muted small">${astrologer.rating === null ? "New" : `★ ${astrologer.rating.toFixed(1)} (${astrologer.rating_count})`}${
          ` · from ${rupees(Math.min(...astrologer.modes.map((m) => astrologer.rates[m])))}/min`}</div>
      </div>
      <${StatusBadge} status=${status} />
    </div>
    <div class="muted small">${[...astrologer.languages, ...astrologer.specialities].join(" · ")}</div>
    <${StartButtons} astrologer=${astrologer} status=${status} wallet=${wallet} />
  </li>`;
}

export function Browse() {
  const { statuses, wallet } = useStore();
  const [filters, setFilters] = useState({ language: "", speciality: "", mode: "", sort: "rating" });
  const [items, setItems] = useState(null);
  useEffect(() => {
    const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    params.set("limit", "100");
    app.api.get(`/consultants?${params}`).then((page) => {
      setItems(page.items);
      return watchAstrologers(page.items.map((a) => a.id));
    }).catch((error) => tell(errorSentence(error), "error"));
  }, [filters.language, filters.speciality, filters.mode, filters.sort]);
  const onlineOnly = filters.online === "on";
  const list = (items || [])
    .map((a) => ({ a, status: statuses[a.id] || a.status }))
    .filter(({ status }) => !onlineOnly || status === "online")
    .sort((x, y) => ORDER[x.status] - ORDER[y.status]);
  const change = (event) => {
    const { name, value, checked, type } = event.target;
    setFilters({ ...filters, [name]: type === "checkbox" ? (checked ? "on" : "") : value.trim().toLowerCase() });
  };
  return html`<section>
    <${QueueBanner} />
    <h1>Astrologers</h1>
    <${BirthProfiles} />
    <form class="filters" id="filters" onSubmit=${(e) => e.preventDefault()} onChange=${change}>
      <label>Language<input name="language" placeholder="e.g. hi" value=${filters.language} /></label>
      <label>Speciality<input name="speciality" placeholder="e.g. vedic" value=${filters.speciality} /></label>
      <label>Mode<select name="mode">
        <option value="">Any</option><option value="chat">Chat</option>
        <option value="voice">Voice</option><option value="video">Video</option></select></label>
      <label>Sort<select name="sort"><option value="rating">Best rated</option>
        <option value="price">Lowest price</option></select></label>
      <label class="check"><input type="checkbox" name="online" checked=${onlineOnly} /> Online now</label>
    </form>
    ${items === null ? html`<${Loading} />` : list.length
      ? html`<ul class="cards" id="consultants">${list.map(({ a, status }) =>
          html`<${Card} key=${a.id} astrologer=${a} status=${status} wallet=${wallet} />`)}</ul>`
      : html`<${Empty}>No astrologer matches these filters.<//>`}
  </section>`;
}
