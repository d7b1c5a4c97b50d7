// Admin dashboard: live consultations, astrologers online, today's money. Refreshed every few
// seconds in place (admins are not parties of the consultations, so no room pushes reach them).
import { html, useEffect, useState } from "/client/lib/html.js";
import { tell } from "/client/store.js";
import { app } from "/client/session.js";
import { errorSentence, rupees } from "/client/format.js";
import { Loading } from "/client/views/shared/components.js";
import { LiveList } from "/client/views/admin/live.js";

const REFRESH_MS = 3000;

export function useRefreshing(load, deps = []) {
  const [data, setData] = useState(null);
  useEffect(() => {
    let alive = true;
    const run = () => load().then((d) => { if (alive) setData(d); })
      .catch((error) => { if (alive) tell(errorSentence(error), "error"); });
    run();
    const timer = setInterval(run, REFRESH_MS);
    return () => { alive = false; clearInterval(timer); };
  }, deps);
  return data;
}

export function Dashboard() {
  const data = useRefreshing(() => app.api.get("/admin/dashboard"));
  if (!data) return html`<${Loading} />`;
  const t = data.today;
  const tiles = [
    ["Live consultations", data.live.filter((c) => c.status === "active").length, "live-count"],
    ["Astrologers online", data.astrologers_online, "online-count"],
    ["In a consultation", data.astrologers_busy, "busy-count"],
    ["Recharges today", rupees(t.recharges_paise), "recharges"],
    ["Charges today", rupees(t.charges_paise), "charges"],
    ["Refunds today", rupees(t.refunds_paise), "refunds"],
    ["Revenue today", rupees(t.revenue_paise), "revenue"],
  ];
  return html`<section>
    <h1>Dashboard</h1>
    <div class="tiles">${tiles.map(([label, value, id]) => html`<div class="tile card">
      <div class="muted small">${label}</div><div class="big" id=${id}>${value}</div></div>`)}</div>
    <h2>Live now</h2>
    <${LiveList} items=${data.live} />
  </section>`;
}
