// The astrologer's view of a consultation's birth details: who, when, where, the main
// placements, the running dasha and the chart picture. Renders into a container it is given.
import { chartImage, describeBirth, el, sentence } from "/client/views/birth/dom.js";

const NAMES = { sun: "Sun", moon: "Moon", mars: "Mars", mercury: "Mercury", jupiter: "Jupiter",
  venus: "Venus", saturn: "Saturn", rahu: "Rahu", ketu: "Ketu" };
const UNRELIABLE = { ascendant: "lagna", houses: "houses", dasha_dates: "dasha dates",
  moon_rashi: "Moon's rashi", moon_nakshatra: "Moon's nakshatra", moon_pada: "Moon's pada",
  dasha_sequence: "dasha sequence" };

function placement(p) {
  return `${p.rashi_name} ${p.degree_in_rashi.toFixed(1)}° · ${p.nakshatra_name} ${p.pada}`;
}

function runningDasha(chart, now = new Date()) {
  const maha = chart.dashas.find((d) => new Date(d.start) <= now && now < new Date(d.end));
  if (!maha) return "";
  const antar = (maha.antardashas || []).find((d) => new Date(d.start) <= now && now < new Date(d.end));
  return `${NAMES[maha.lord]}${antar ? " / " + NAMES[antar.lord] : ""} (until ${maha.end.slice(0, 10)})`;
}

function table(chart) {
  const rows = [["Lagna", placement(chart.ascendant)],
    ...chart.grahas.map((g) => [NAMES[g.name] + (g.retrograde && g.name !== "rahu" && g.name !== "ketu" ? " ℞" : ""),
      `${placement(g)} · house ${g.house}`])];
  return el("table", { class: "placements" }, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

// Shows the birth profile of `consultationId` in `container` (nothing shared: says so).
export async function renderChartPanel(container, api, consultationId) {
  container.replaceChildren(el("p", { class: "muted" }, "Loading birth details…"));
  let data;
  try {
    data = await api.get(`/consultations/${consultationId}/birth-profile`);
  } catch (error) {
    container.replaceChildren(el("p", { class: "muted birth-none" },
      error.code === "BIRTH_PROFILE_NOT_FOUND" ? "No birth details shared." : sentence(error)));
    return;
  }
  const { profile, chart } = data;
  const picture = el("div", { class: "chart-box" });
  const show = async (style) => {
    try { picture.replaceChildren(await chartImage(api, profile.id, style)); }
    catch (error) { picture.replaceChildren(el("p", { class: "muted" }, sentence(error))); }
  };
  const unreliable = chart.unreliable.length
    ? el("p", { class: "warning" }, "Birth time unknown — not reliable: " + chart.unreliable.map((u) => UNRELIABLE[u] || u).join(", "))
    : null;
  container.replaceChildren(el("div", { class: "birth-panel" },
    el("div", { class: "row" }, el("strong", { class: "birth-name" }, profile.name),
      el("span", { class: "muted" }, profile.gender)),
    el("div", { class: "birth-data" }, describeBirth(profile)),
    unreliable,
    el("div", {}, "Moon: ", placement(chart.grahas.find((g) => g.name === "moon"))),
    el("div", {}, "Dasha: ", runningDasha(chart)),
    el("div", { class: "row" },
      el("button", { type: "button", class: "secondary", onclick: () => show("north") }, "North Indian"),
      el("button", { type: "button", class: "secondary", onclick: () => show("south") }, "South Indian")),
    picture,
    el("details", {}, el("summary", {}, "All placements"), table(chart))));
  await show("north");
}
