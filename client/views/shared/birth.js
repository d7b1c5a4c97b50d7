// Preact islands around the birth-details views (client/views/birth/, plain DOM renderers):
// Preact renders an empty container once and leaves its children to them.
import { html, useEffect, useRef } from "/client/lib/html.js";
import { app } from "/client/session.js";
import { renderProfiles } from "/client/views/birth/profiles.js";
import { renderChartPanel } from "/client/views/birth/chart-panel.js";

let picker = null; // the mounted profiles view's picker, read when a consultation starts

export function chosenBirthProfile() { return picker ? picker.selected() : ""; }

// The caller's birth profiles and the picker for the next consultation, folded away by default.
export function BirthProfiles() {
  const ref = useRef(null);
  useEffect(() => {
    picker = renderProfiles(ref.current, app.api);
    return () => { picker = null; };
  }, []);
  return html`<details class="card birth-box" id="birth-box">
    <summary>Birth details for a kundli reading</summary>
    <section class="birth" id="birth" ref=${ref}></section>
  </details>`;
}

// The astrologer's view of the birth details a caller shared with a consultation.
export function BirthChart({ consultationId, id = null }) {
  const ref = useRef(null);
  useEffect(() => { renderChartPanel(ref.current, app.api, consultationId); }, [consultationId]);
  return html`<div class="birth" id=${id} ref=${ref}></div>`;
}
