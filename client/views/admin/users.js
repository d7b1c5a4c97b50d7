// Admin: users — search; disable/enable; approve an astrologer; commission override; a user's
// wallet and consultations.
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { navigate, query } from "/client/router.js";
import { ROLE_WORD, errorSentence, rupees, when } from "/client/format.js";
import { ConsultationList, Empty, Loading } from "/client/views/shared/components.js";
import { MoreButton, usePages } from "/client/views/shared/history.js";

function Flags({ u }) {
  return html`${u.disabled ? html`<span class="tag ended">Disabled</span>` : null}
    ${u.role === "consultant" ? html`<span class=${`tag ${u.approved ? "active" : "requested"}`}>${u.approved ? "Approved" : "Not approved"}</span>` : null}`;
}

export function Users() {
  const params = query();
  const path = `/admin/users?${new URLSearchParams([...params].filter(([k, v]) => ["q", "role"].includes(k) && v))}`;
  const { items, more } = usePages(path);
  const submit = (event) => {
    event.preventDefault();
    navigate(`/app/admin/users?${new URLSearchParams([...new FormData(event.target)].filter(([, v]) => v))}`);
  };
  return html`<section>
    <h1>Users</h1>
    <form class="filters card" id="user-search" onSubmit=${submit}>
      <label>E-mail or name<input name="q" type="search" value=${params.get("q") || ""} /></label>
      <label>Role<select name="role" value=${params.get("role") || ""}><option value="">Any</option>
        <option value="user">Callers</option><option value="consultant">Astrologers</option><option value="admin">Admins</option></select></label>
      <button>Search</button>
    </form>
    ${items === null ? html`<${Loading} />` : items.length ? html`<ul class="list" id="users">${items.map((u) => html`<li>
      <a class="item" href=${`/app/admin/users/${u.id}`} data-id=${u.id}>
        <span class="line"><strong>${u.name}</strong><span>${ROLE_WORD[u.role]} <${Flags} u=${u} /></span></span>
        <span class="muted small">${u.email}</span></a></li>`)}</ul>` : html`<${Empty}>No user matches.<//>`}
    <${MoreButton} more=${more} />
  </section>`;
}

export function UserDetail({ id }) {
  const [user, setUser] = useState(null);
  const [wallet, setWallet] = useState(null);
  const [commission, setCommission] = useState("");
  const { items, more } = usePages(`/admin/users/${id}/consultations?limit=20`);
  useEffect(() => {
    app.api.get(`/admin/users/${id}`).then((u) => {
      setUser(u);
      setCommission(u.commission_percent === null ? "" : String(u.commission_percent));
      return app.api.get(`/admin/wallets/${id}`).then(setWallet).catch(() => {});
    }).catch((error) => tell(errorSentence(error), "error"));
  }, [id]);
  if (!user) return html`<${Loading} />`;
  const act = (path, body, done) => async () => {
    try { setUser(await app.api.post(`/admin/users/${id}/${path}`, body)); tell(done); }
    catch (error) { tell(errorSentence(error), "error"); }
  };
  const saveCommission = async (event) => {
    event.preventDefault();
    const value = commission.trim() === "" ? null : Number(commission);
    try {
      setUser(await app.api.put(`/admin/users/${id}/commission`, { commission_percent: value }));
      tell(value === null ? "Commission back to the platform default." : `Commission set to ${value}%.`);
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  return html`<section>
    <h1>${user.name}</h1>
    <div class="card">
      <dl class="facts">
        <dt>E-mail</dt><dd>${user.email}</dd><dt>Role</dt><dd>${ROLE_WORD[user.role]} <${Flags} u=${user} /></dd>
        <dt>Joined</dt><dd>${when(user.created_at)}</dd>
        ${wallet ? html`<dt>Wallet</dt><dd id="user-wallet">${rupees(wallet.balance_paise)}</dd>` : null}
      </dl>
      <div class="row">
        ${user.disabled ? html`<button class="secondary" id="enable" onClick=${act("enable", {}, "Account enabled.")}>Enable account</button>`
          : html`<button class="danger" id="disable" onClick=${act("disable", { reason: "disabled by admin" }, "Account disabled.")}>Disable account</button>`}
        ${user.role === "consultant" && !user.approved ? html`<button id="approve" onClick=${act("approve", {}, "Astrologer approved.")}>Approve astrologer</button>` : null}
      </div>
      ${user.role === "consultant" ? html`<form class="row" id="commission" onSubmit=${saveCommission}>
        <label>Platform commission (%; empty for the default)
          <input inputmode="numeric" value=${commission} onInput=${(e) => setCommission(e.target.value)} /></label>
        <button class="secondary">Save</button></form>` : null}
    </div>
    <h2>Consultations</h2>
    ${items === null ? html`<${Loading} />` : html`<${ConsultationList} items=${items} hrefOf=${(c) => `/app/admin/consultations/${c.id}`} />`}
    <${MoreButton} more=${more} />
  </section>`;
}
