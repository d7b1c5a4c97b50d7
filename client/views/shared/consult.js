// The consult screen, for the caller, the astrologer and an observing admin. On a phone the
// video fills the screen with the controls over it and the chat is a drawer; on a desktop the
// chat sits beside the video. Every control stays within 390×844.
import { html, useEffect, useRef, useState } from "/client/lib/html.js";
import { useStore, tell } from "/client/store.js";
import { MODE_WORD, duration, endSentence, errorSentence, rupees } from "/client/format.js";
import { useConsultation } from "/client/views/shared/consult-state.js";
import { RechargeForm } from "/client/views/caller/wallet.js";
import { Rating } from "/client/views/shared/components.js";
import { ForceEnd } from "/client/views/admin/live.js";
import { BirthChart } from "/client/views/shared/birth.js";

function Video({ stream, id, className, muted = false, hidden = false }) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current && ref.current.srcObject !== stream) ref.current.srcObject = stream;
  });
  return html`<video ref=${ref} id=${id} class=${className} autoplay playsinline muted=${muted}
    hidden=${hidden} aria-hidden="true"></video>`;
}

function Clock({ since }) {
  const [, tick] = useState(0);
  useEffect(() => { const t = setInterval(() => tick((n) => n + 1), 1000); return () => clearInterval(t); }, []);
  return html`<span class="timer" aria-label="time so far">${duration((Date.now() - Date.parse(since)) / 1000)}</span>`;
}

function Meter({ c, tick, role, wallet }) {
  const minutes = tick ? tick.minutes : c.minutes_charged;
  const spent = tick ? tick.amount_paise : c.amount_charged_paise;
  const parts = [`${minutes} min`, rupees(spent)];
  if (role === "user" && wallet) {
    const balance = tick && tick.balance_paise !== null && tick.balance_paise !== undefined
      ? tick.balance_paise : wallet.balance_paise;
    parts.push(`${Math.floor(balance / c.rate_paise)} min left`);
  }
  return html`<span class="meter" id="meter">${parts.join(" · ")}</span>`;
}

function Chat({ state, actions, me, open, readOnly, onClose }) {
  const log = useRef(null);
  const [text, setText] = useState("");
  const typingTimer = useRef(null);
  useEffect(() => { if (log.current) log.current.scrollTop = log.current.scrollHeight; }, [state.messages.length, open]);
  const live = state.consultation.state === "active" && !state.ended && !readOnly;
  const submit = async (event) => {
    event.preventDefault();
    const body = text.trim();
    if (!body || !live) return;
    setText("");
    try { await actions.send(body); } catch (error) { setText(body); tell(errorSentence(error), "error"); }
  };
  const input = (event) => {
    setText(event.target.value);
    if (!typingTimer.current) actions.typing(true);
    clearTimeout(typingTimer.current);
    typingTimer.current = setTimeout(() => { typingTimer.current = null; actions.typing(false); }, 2500);
  };
  return html`<aside class=${`chat ${open ? "open" : ""}`} id="chat" aria-label="Chat">
    ${onClose ? html`<div class="chat-head"><strong>Chat</strong>
      <button class="secondary" id="chat-close" onClick=${onClose}>Close chat</button></div>` : null}
    <div class="log" id="chat-log" ref=${log} aria-live="polite">
      ${state.messages.length ? null : html`<p class="muted small center">Messages appear here.
        Phone numbers, e-mail addresses and links are hidden for your safety.</p>`}
      ${state.messages.map((m) => html`<div key=${m.seq} data-seq=${m.seq}
        class=${`msg ${m.sender_id === me.id ? "mine" : ""}`}>${m.kind === "image" ? "[image]" : m.text}</div>`)}
    </div>
    <div class="typing muted small" id="typing">${state.typing ? "typing…" : ""}</div>
    ${live ? html`<form class="chat-form" id="chat-form" onSubmit=${submit}>
      <label class="sr-only" for="chat-input">Message</label>
      <input id="chat-input" name="text" placeholder="Type a message" autocomplete="off" maxlength="4000"
        value=${text} onInput=${input} />
      <button>Send</button>
    </form>` : null}
  </aside>`;
}

function LowBalance({ minutes, onDone }) {
  return html`<div class="banner warn" id="low-balance" role="alert">
    <p><strong>${minutes <= 0 ? "Your balance is about to run out." : `About ${minutes} minute${minutes === 1 ? "" : "s"} of balance left.`}</strong>
      Add money to keep talking — the consultation goes on.</p>
    <${RechargeForm} id="topup" initial="200" onDone=${onDone} />
  </div>`;
}

function Ended({ state, me, id }) {
  const { reason, minutes, amount_paise } = state.ended;
  const role = me.role === "admin" ? "consultant" : me.role;
  return html`<div class="card ended" id="ended">
    <p id="end-sentence"><strong>${endSentence(reason, role)}</strong></p>
    <p class="muted">${minutes} min · ${rupees(amount_paise)}${me.role === "consultant" ? " billed to the caller" : ""}</p>
    <div class="row">
      ${me.role === "user" && reason === "insufficient_balance"
        ? html`<a class="button" href="/app/wallet">Recharge</a>` : null}
      ${me.role !== "admin" ? html`<a class="button secondary" href=${`/app/history/${id}`} id="receipt-link">See receipt</a>` : null}
      <a class="button secondary" href=${me.role === "admin" ? `/app/admin/consultations/${id}` : "/app"}>Done</a>
    </div>
    ${me.role === "user" && minutes > 0 ? html`<${Rating} id=${id} />` : null}
  </div>`;
}

function stateLine(state, names, me) {
  const c = state.consultation;
  const other = me.role === "user" ? (names ? names.astrologer : "the astrologer")
    : me.role === "consultant" ? (names ? names.caller : "the caller")
      : names ? `${names.caller} with ${names.astrologer}` : "";
  const title = me.role === "admin" ? `${MODE_WORD[c.mode]}: ${other}` : `${MODE_WORD[c.mode]} with ${other}`;
  if (state.ended || c.state === "ended") return `${title} — ended`;
  if (c.state === "requested") {
    return me.role === "user" ? `Waiting for ${other} to accept…` : `${MODE_WORD[c.mode]} request from ${other}`;
  }
  return `${title} — Live${me.role === "admin" ? " (observing, read only)" : ""}`;
}

function Controls({ state, actions, me, chatOpen, setChatOpen, c, stage }) {
  const [busy, setBusy] = useState(false);
  const wrap = (fn) => async () => {
    setBusy(true);
    try { await fn(); } catch (error) { tell(errorSentence(error), "error"); }
    setBusy(false);
  };
  const media = c.mode !== "chat" && state.calling && !state.ended && me.role !== "admin";
  const live = !state.ended && c.state !== "ended";
  const { microphone, camera } = state.own;
  return html`<div class="controls" role="toolbar" aria-label="Call controls">
    ${media ? html`<button class="toggle" id="mute" aria-pressed=${String(!microphone)} disabled=${busy}
        onClick=${wrap(actions.toggleMicrophone)}>${microphone ? "Mute" : "Unmute"}</button>` : null}
    ${media && c.mode === "video" ? html`<button class="toggle" id="camera" aria-pressed=${String(!camera)}
        disabled=${busy} onClick=${wrap(actions.toggleCamera)}>${camera ? "Camera off" : "Camera on"}</button>` : null}
    ${stage ? html`<button class="toggle chat-toggle" id="chat-toggle" aria-expanded=${chatOpen}
        aria-controls="chat" onClick=${() => setChatOpen(!chatOpen)}>${chatOpen ? "Hide chat" : "Chat"}${
        !chatOpen && state.messages.length ? ` (${state.messages.length})` : ""}</button>` : null}
    ${live && me.role !== "admin" ? html`<button class="danger" id="end" onClick=${wrap(actions.end)}>
        ${c.state === "requested" ? (me.role === "user" ? "Cancel request" : "Decline") : "End"}</button>` : null}
    ${me.role === "admin" && live ? html`<${ForceEnd} id=${c.id} />` : null}
  </div>`;
}

function qualityNote(state, me) {
  const q = state.quality;
  if (!q) return "";
  return q.user_id === me.id ? "Video paused — weak connection"
    : "Video paused — weak connection on the other side";
}

// A party's stage: the other party's picture (or a camera-off note) with their microphone and
// camera state, and our own picture in the corner.
function CallStage({ state, actions, c, shown, me }) {
  const cameraOff = c.mode === "video" && state.remote && !state.remote.video;
  const note = remoteNote(state, c);
  const ownNote = [state.own.microphone ? "" : "You are muted",
    c.mode === "video" && !state.own.camera ? "your camera is off" : ""].filter(Boolean).join(" · ");
  return html`<div class="stage" hidden=${!shown}>
    <${Video} id="remote-video" className="remote" stream=${actions.remoteStream()} />
    <div class="camera-off" id="remote-camera-off" hidden=${!cameraOff}>${cameraOff ? note.split(" · ").pop() : ""}</div>
    <${Video} id="local-video" className="local" stream=${actions.localStream()} muted=${true}
      hidden=${!state.own.camera || c.mode !== "video"} />
    <div class="remote-media" id="remote-media" aria-live="polite">${note}</div>
    <div class="own-media" id="own-media">${ownNote}</div>
    <div class="video-quality" id="video-quality" role="status"
      hidden=${!qualityNote(state, me)}>${qualityNote(state, me)}</div>
  </div>`;
}

// An observing admin's stage: both parties side by side, each labelled with role and name and
// with the microphone/camera state they announced since the admin came in.
function ObservedStage({ state, actions, c, shown }) {
  const parties = [
    { id: c.caller_id, role: "Caller", name: state.names ? state.names.caller : "" },
    { id: c.consultant_id, role: "Astrologer", name: state.names ? state.names.astrologer : "" },
  ];
  return html`<div class="stage observed" id="observed" hidden=${!shown}>${parties.map((p) => {
    const m = state.media[p.id];
    const note = m ? [m.audio ? "" : "muted", c.mode === "video" && !m.video ? "camera off" : ""]
      .filter(Boolean).join(" · ") : "";
    return html`<figure class="party" key=${p.id} id=${`observed-${p.role.toLowerCase()}`}>
      <${Video} className="remote" stream=${actions.partyStream(p.id)} />
      <figcaption>${p.role}${p.name ? `: ${p.name}` : ""}${note ? ` — ${note}` : ""}</figcaption>
    </figure>`;
  })}</div>`;
}

function remoteNote(state, c) {
  const r = state.remote;
  if (!r) return "";
  const who = r.role === "consultant" ? "Astrologer" : "Caller";
  return [r.audio ? "" : `${who} muted`, c.mode === "video" && !r.video ? `${who}'s camera is off` : ""]
    .filter(Boolean).join(" · ");
}

export function Consult({ id }) {
  const { me, wallet } = useStore();
  const [state, actions] = useConsultation(id);
  const [chatOpen, setChatOpen] = useState(false);
  const c = state.consultation;
  if (!c) return html`<p class="muted" id="consult-state">Connecting…</p>`;
  const ended = Boolean(state.ended) || c.state === "ended";
  const media = c.mode !== "chat" && !ended && (state.calling || c.state === "active");
  const Stage = me.role === "admin" ? ObservedStage : CallStage;
  return html`<section class=${`consult mode-${c.mode} ${media ? "with-media" : ""} ${chatOpen ? "chat-open" : ""}`}>
    <div class="consult-top">
      <div class="grow">
        <h1 id="consult-state">${stateLine(state, state.names, me)}</h1>
        <div class="muted small">
          ${c.state === "active" && !ended && c.started_at ? html`<${Clock} since=${c.started_at} /> · ` : null}
          ${rupees(c.rate_paise)}/min · <${Meter} c=${c} tick=${state.tick} role=${me.role} wallet=${wallet} />
        </div>
      </div>
    </div>
    ${state.peerAway && !ended ? html`<p class="banner" role="status">The other side lost connection — waiting for them…</p>` : null}
    ${state.callError ? html`<p class="banner warn" role="alert">${state.callError}</p>` : null}
    ${me.role === "user" && state.warning !== null && !ended
      ? html`<${LowBalance} minutes=${state.warning} onDone=${actions.clearWarning} />` : null}
    ${ended ? html`<${Ended} state=${{ ...state, ended: state.ended || { reason: c.end_reason,
        minutes: c.minutes_charged, amount_paise: c.amount_charged_paise } }} me=${me} id=${id} />` : null}
    <div class="room"><div class="call">
    <${Stage} state=${state} actions=${actions} c=${c} shown=${media} me=${me} />
    <${Controls} state=${state} actions=${actions} me=${me} chatOpen=${chatOpen} setChatOpen=${setChatOpen} c=${c} stage=${media} />
    </div>
    <${Chat} state=${state} actions=${actions} me=${me} open=${chatOpen || c.mode === "chat"}
      readOnly=${me.role === "admin"} onClose=${c.mode === "chat" ? null : () => setChatOpen(false)} />
    </div>
    ${me.role === "consultant" && state.names && state.names.birthShared ? html`<aside class="card" aria-label="Birth details">
      <${BirthChart} consultationId=${id} id="birth-side" /></aside>` : null}
  </section>`;
}
