// The caller's birth profiles: list, add (with offline place autocomplete), delete, see the
// chart, and pick one when starting a consultation. Renders into a container it is given.
import { chartImage, describeBirth, el, sentence } from "/client/views/birth/dom.js";

const SEARCH_PAUSE_MS = 250;

function placeField(api) {
  let chosen = null; // { id } from the gazetteer, or null
  let timer = null;
  const input = el("input", { id: "birth-place", name: "place", placeholder: "Place of birth (town)",
    autocomplete: "off", role: "combobox", "aria-autocomplete": "list", "aria-controls": "birth-place-options" });
  const options = el("ul", { id: "birth-place-options", class: "place-options", role: "listbox" });
  const lat = el("input", { name: "latitude", type: "number", step: "any", min: "-90", max: "90", placeholder: "latitude" });
  const lon = el("input", { name: "longitude", type: "number", step: "any", min: "-180", max: "180", placeholder: "longitude" });
  const typed = el("details", { class: "coordinates" }, el("summary", {}, "Type coordinates instead"),
    el("div", { class: "row" }, lat, lon));
  const search = async () => {
    const q = input.value.trim();
    if (q.length < 2) { options.replaceChildren(); return; }
    try {
      const found = await api.get(`/places?q=${encodeURIComponent(q)}&limit=8`);
      options.replaceChildren(...found.items.map((place) => el("li", { role: "option" },
        el("button", { type: "button", class: "link place-option", "data-id": place.id, onclick: () => {
          chosen = place;
          input.value = place.name;
          options.replaceChildren();
        } }, place.name, el("span", { class: "muted" }, ` · ${place.time_zone}`)))));
    } catch (error) { options.replaceChildren(el("li", { class: "muted" }, sentence(error))); }
  };
  input.addEventListener("input", () => {
    chosen = null;
    clearTimeout(timer);
    timer = setTimeout(search, SEARCH_PAUSE_MS);
  });
  return {
    node: el("div", { class: "place-field" }, input, options, typed),
    fields() {
      if (chosen) return { place_id: chosen.id };
      if (lat.value !== "" && lon.value !== "") {
        return { latitude: Number(lat.value), longitude: Number(lon.value), place_name: input.value.trim() || null };
      }
      return {};
    },
    reset() { chosen = null; input.value = ""; lat.value = ""; lon.value = ""; options.replaceChildren(); },
  };
}

function addForm(api, onAdded, say) {
  const place = placeField(api);
  const unknown = el("input", { type: "checkbox", name: "time_unknown" });
  const time = el("input", { name: "time", type: "time", "aria-label": "time of birth" });
  unknown.addEventListener("change", () => { time.disabled = unknown.checked; });
  const form = el("form", { class: "stack", id: "birth-profile-form" },
    el("input", { name: "name", placeholder: "Name", required: true, maxlength: "80" }),
    el("select", { name: "gender", "aria-label": "gender" },
      ...["female", "male", "other", "undisclosed"].map((g) => el("option", { value: g }, g))),
    el("input", { name: "date", type: "date", required: true, "aria-label": "date of birth" }),
    el("div", { class: "row" }, time, el("label", {}, unknown, " time unknown")),
    place.node,
    el("button", {}, "Save birth details"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    const body = { name: data.name, gender: data.gender, date: data.date,
      time: unknown.checked || !data.time ? null : data.time, ...place.fields() };
    try {
      await api.post("/birth-profiles", body);
      form.reset();
      place.reset();
      time.disabled = false;
      say("");
      await onAdded();
    } catch (error) { say(sentence(error)); }
  });
  return form;
}

function profileCard(api, profile, onDeleted, say) {
  const chart = el("div", { class: "chart-box" });
  return el("div", { class: "card birth-profile", "data-id": profile.id },
    el("div", { class: "row" }, el("strong", {}, profile.name), el("span", { class: "muted" }, profile.gender)),
    el("div", { class: "muted" }, describeBirth(profile)),
    el("div", { class: "row" },
      el("button", { type: "button", class: "secondary", onclick: async () => {
        try { chart.replaceChildren(await chartImage(api, profile.id, "north"), await chartImage(api, profile.id, "south")); }
        catch (error) { say(sentence(error)); }
      } }, "Show chart"),
      el("button", { type: "button", class: "secondary delete", onclick: async () => {
        if (!confirm(`Delete the birth details of ${profile.name} for good?`)) return;
        try { await api.request("DELETE", `/birth-profiles/${profile.id}`); await onDeleted(); }
        catch (error) { say(sentence(error)); }
      } }, "Delete")),
    chart);
}

// Renders the caller's profiles and a picker into `container`; returns { selected() } giving the
// id of the profile picked for the next consultation ("" for none).
export function renderProfiles(container, api) {
  const list = el("div", { id: "birth-profiles-list" });
  const message = el("p", { class: "warning", id: "birth-message", "aria-live": "polite" });
  const say = (text) => { message.textContent = text; };
  const picker = el("select", { id: "birth-profile-picker", "aria-label": "birth details for the consultation" });
  const load = async () => {
    const previous = picker.value;
    const { items } = await api.get("/birth-profiles");
    list.replaceChildren(...(items.length ? items.map((p) => profileCard(api, p, load, say))
      : [el("p", { class: "muted" }, "No birth details saved yet.")]));
    picker.replaceChildren(el("option", { value: "" }, "Without birth details"),
      ...items.map((p) => el("option", { value: p.id }, p.name)));
    picker.value = items.some((p) => p.id === previous) ? previous : (items[0] ? items[0].id : "");
  };
  container.replaceChildren(
    el("h2", {}, "Birth details"),
    el("div", { class: "row" }, el("span", {}, "Consult with:"), picker),
    list,
    el("details", { class: "card" }, el("summary", {}, "Add birth details"), addForm(api, load, say)),
    message);
  load().catch((error) => say(sentence(error)));
  return { selected: () => picker.value };
}
