// Starting a consultation from any caller screen: straight in, or into the astrologer's queue.
import { html } from "/client/lib/html.js";
import { store, tell } from "/client/store.js";
import { app } from "/client/session.js";
import { navigate } from "/client/router.js";
import { MODE_WORD, errorSentence, rupees } from "/client/format.js";
import { chosenBirthProfile } from "/client/views/shared/birth.js";

export async function startConsult(astrologer, mode) {
  try {
    const birth = chosenBirthProfile();
    const reply = await app.socket.send("consult_request", { consultant_id: astrologer.id, mode,
      waitlist: true, ...(birth ? { birth_profile_id: birth } : {}) });
    if (reply.waitlisted) {
      // The queue banner (QueueBanner) says where the caller stands.
      store.set({ notice: null, waitlist: { consultant_id: astrologer.id, name: astrologer.display_name,
                                            mode, position: reply.position } });
      return;
    }
    store.set({ waitlist: null });
    navigate(`/app/consult/${reply.consultation.id}`);
  } catch (error) {
    tell(errorSentence(error), "error");
  }
}

export async function leaveQueue() {
  const { waitlist } = store.state;
  if (!waitlist) return;
  await app.socket.send("waitlist", { consultant_id: waitlist.consultant_id, action: "leave" }).catch(() => {});
  store.set({ waitlist: null, notice: null });
}

// One button per mode, with its price and how many minutes the wallet buys.
export function StartButtons({ astrologer, status, wallet }) {
  const available = wallet ? wallet.available_paise : 0;
  const closed = status === "offline" || status === "away";
  return html`<div class="start">${astrologer.modes.map((mode) => {
    const rate = astrologer.rates[mode];
    const minutes = Math.floor(available / rate);
    return html`<button data-mode=${mode} disabled=${closed}
        onClick=${() => startConsult(astrologer, mode)}>
      <span>${MODE_WORD[mode]}</span>
      <small>${rupees(rate)}/min · ${minutes} min</small>
    </button>`;
  })}</div>`;
}

export function QueueBanner() {
  const { waitlist } = store.state;
  if (!waitlist) return null;
  const offered = waitlist.status === "offered";
  return html`<div class="banner" id="waitlist" role="status">
    ${offered ? html`<span>${waitlist.name || "Your astrologer"} is free now.</span>
        <button onClick=${() => startConsult({ id: waitlist.consultant_id, display_name: waitlist.name }, waitlist.mode || "chat")}>Start now</button>`
      : html`<span>You are number ${waitlist.position} in ${waitlist.name}'s queue.</span>`}
    <button class="secondary" onClick=${leaveQueue}>Leave queue</button>
  </div>`;
}
