// One astrologer: profile, live status, prices and what the wallet buys, start or queue.
import { html, useEffect, useState } from "/client/lib/html.js";
import { useStore, tell } from "/client/store.js";
import { app, watchAstrologers } from "/client/session.js";
import { errorSentence, rupees } from "/client/format.js";
import { Loading } from "/client/views/shared/components.js";
import { Avatar, StatusBadge } from "/client/views/caller/browse.js";
import { QueueBanner, StartButtons } from "/client/views/caller/start.js";
import { BirthProfiles } from "/client/views/shared/birth.js";

export function AstrologerPage({ id }) {
  const { statuses, wallet } = useStore();
  const [astrologer, setAstrologer] = useState(null);
  useEffect(() => {
    app.api.get(`/consultants/${id}`).then((a) => { setAstrologer(a); return watchAstrologers([a.id]); })
      .catch((error) => tell(errorSentence(error), "error"));
  }, [id]);
  if (!astrologer) return html`<${Loading} />`;
  const status = statuses[id] || astrologer.status;
  return html`<section class="astrologer">
    <${QueueBanner} />
    <div class="card">
      <div class="who-line">
        <${Avatar} astrologer=${astrologer} />
        <div class="grow"><h1>${astrologer.display_name}</h1>
          <div class="muted">${astrologer.rating === null ? "No ratings yet"
            : `★ ${astrologer.rating.toFixed(1)} from ${astrologer.rating_count} ratings`}</div>
          <div class="row small"><${StatusBadge} status=${status} />
            ${astrologer.verified ? html`<span class="verified">✓ Verified</span>` : null}</div></div>
      </div>
      <p>${astrologer.bio || "This astrologer has not written a bio yet."}</p>
      <dl class="facts">
        <dt>Languages</dt><dd>${astrologer.languages.join(", ") || "—"}</dd>
        <dt>Specialities</dt><dd>${astrologer.specialities.join(", ") || "—"}</dd>
      </dl>
      <p class="muted small">Your wallet: ${rupees(wallet ? wallet.available_paise : 0)}.
        Each button shows the price a minute and the minutes your balance buys.
        ${" "}<a href="/app/wallet">Recharge</a></p>
      <${StartButtons} astrologer=${astrologer} status=${status} wallet=${wallet} />
    </div>
    <${BirthProfiles} />
  </section>`;
}
