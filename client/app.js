// The kundlinow web app: callers, astrologers and admins. Plain ES modules, no build step.
import { Api, ApiError, Signalling } from "/client/api.js";
import { CallSession } from "/client/call.js";
import { renderProfiles } from "/client/views/birth/profiles.js";
import { renderChartPanel } from "/client/views/birth/chart-panel.js";

const TOKEN_KEY = "kundlinow.token";
const view = document.getElementById("view");
const notice = document.getElementById("notice");
const state = {
  api: new Api(sessionStorage.getItem(TOKEN_KEY)), me: null, socket: null,
  requests: new Map(), // an astrologer's pending consult requests, by consultation id
};
let leaveView = () => {};

// ---- small helpers -------------------------------------------------------------------------

const rupees = (paise) => "₹" + (paise / 100).toLocaleString("en-IN", { minimumFractionDigits: 2 });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function tell(message) {
  notice.textContent = message;
  notice.hidden = !message;
}

function failure(error) {
  const text = error instanceof ApiError || error.code ? `${error.message} (${error.code})` : String(error);
  tell(text);
}

function formData(form) { return Object.fromEntries(new FormData(form).entries()); }

// Test and single-machine demos: `?loopback` keeps only 127.0.0.1 ICE candidates.
const candidateFilter = new URLSearchParams(location.search).has("loopback")
  ? (line) => line.includes(" 127.0.0.1 ") : null;

// ---- session start / end -------------------------------------------------------------------

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  state.api = new Api(token);
  state.me = await state.api.get("/me");
  state.socket = new Signalling(token);
  state.socket.on("connected", () => {
    if (state.me.role === "consultant") state.socket.send("presence", { status: "online" }).catch(failure);
  });
  state.socket.on("consult_request", ({ consultation }) => {
    state.requests.set(consultation.id, consultation);
    tell(`New ${consultation.mode} request — see your console.`);
  });
  state.socket.on("consult_state", ({ consultation }) => {
    if (consultation.state !== "requested") state.requests.delete(consultation.id);
  });
  state.socket.on("waitlist", (data) => {
    if (data.status === "offered") {
      tell("Your astrologer is free now — start your consultation from the list within "
           + `${Math.round(data.offer_expires_in_s)} s.`);
    } else {
      tell("Your waitlist offer expired.");
    }
  });
  document.getElementById("who").textContent = `${state.me.display_name} · ${state.me.role}`;
  document.getElementById("logout").hidden = false;
  await refreshBalance();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.socket) state.socket.close();
  location.hash = "#/";
  location.reload();
}

async function refreshBalance() {
  const badge = document.getElementById("balance");
  if (!state.me || state.me.role !== "user") return;
  const wallet = await state.api.get("/wallet");
  badge.textContent = `Wallet ${rupees(wallet.available_paise)}`;
  badge.hidden = false;
}

// ---- login ---------------------------------------------------------------------------------

function loginView() {
  const login = el("form", { class: "stack", id: "login" },
    el("h2", {}, "Log in"),
    el("input", { name: "email", type: "email", placeholder: "email", required: true }),
    el("input", { name: "password", type: "password", placeholder: "password", required: true }),
    el("button", {}, "Log in"));
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const reply = await state.api.post("/auth/login", formData(login));
      await signIn(reply.access_token);
      tell("");
      render();
    } catch (error) { failure(error); }
  });
  const register = el("form", { class: "stack", id: "register" },
    el("h2", {}, "New here?"),
    el("input", { name: "display_name", placeholder: "your name", required: true }),
    el("input", { name: "email", type: "email", placeholder: "email", required: true }),
    el("input", { name: "password", type: "password", placeholder: "password (8+ characters)", required: true }),
    el("select", { name: "role" }, el("option", { value: "user" }, "I want a consultation"),
      el("option", { value: "consultant" }, "I am an astrologer")),
    el("button", {}, "Create account"));
  register.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const reply = await state.api.post("/auth/register", formData(register));
      await signIn(reply.access_token);
      tell("");
      render();
    } catch (error) { failure(error); }
  });
  view.replaceChildren(el("div", { class: "grid" }, el("div", { class: "card" }, login),
    el("div", { class: "card" }, register)));
}

// ---- caller --------------------------------------------------------------------------------

async function recharge(amountRupees) {
  const order = await state.api.post("/wallet/recharge", { amount_paise: Math.round(amountRupees * 100) });
  let checkout;
  if (order.gateway === "simulator") {
    // Development: the server's gateway simulator "pays" and signs like Razorpay.
    checkout = (await state.api.post("/wallet/recharge/simulate", { order_id: order.order_id })).checkout;
  } else if (window.Razorpay) {
    checkout = await new Promise((resolve, reject) => {
      const rzp = new window.Razorpay({ key: order.key_id, order_id: order.order_id,
        amount: order.amount_paise, currency: "INR", name: "kundlinow", handler: resolve,
        modal: { ondismiss: () => reject(new Error("payment cancelled")) } });
      rzp.open();
    });
  } else {
    throw new Error("Razorpay checkout is not loaded");
  }
  await state.api.post("/wallet/recharge/verify", checkout);
  await refreshBalance();
}

async function startConsult(consultant, mode) {
  try {
    const birth = state.birthPicker ? state.birthPicker.selected() : "";
    const reply = await state.socket.send("consult_request",
      { consultant_id: consultant.id, mode, waitlist: true, ...(birth ? { birth_profile_id: birth } : {}) });
    if (reply.waitlisted) {
      tell(`${consultant.display_name} is busy: you are number ${reply.position} in the queue.`);
      return;
    }
    tell("");
    location.hash = `#/session/${reply.consultation.id}`;
  } catch (error) {
    if (error.code === "INSUFFICIENT_BALANCE") tell("Please recharge your wallet to start (at least the minimum minutes).");
    else failure(error);
  }
}

function consultantCard(c) {
  const buttons = c.modes.map((mode) => el("button", {
    class: "secondary", "data-mode": mode, disabled: c.status === "offline" || c.status === "away",
    onclick: () => startConsult(c, mode),
  }, `${mode} ${rupees(c.rates[mode])}/min`));
  return el("div", { class: "card consultant", "data-id": c.id },
    el("div", { class: "row" }, el("strong", {}, c.display_name),
      el("span", { class: `status ${c.status}` }, c.status),
      el("span", { class: "muted" }, c.rating === null ? "new" : `★ ${c.rating.toFixed(1)}`)),
    el("div", { class: "muted" }, `${c.languages.join(", ")} · ${c.specialities.join(", ")}`),
    el("p", {}, c.bio || ""),
    el("div", { class: "row" }, buttons));
}

async function callerHome() {
  const wallet = await state.api.get("/wallet");
  const rechargeForm = el("form", { class: "row", id: "recharge" },
    el("input", { name: "amount", type: "number", min: "1", max: "100000", step: "1", value: "500", "aria-label": "amount in rupees" }),
    el("button", {}, "Recharge"));
  rechargeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try { await recharge(Number(formData(rechargeForm).amount)); tell("Wallet recharged."); render(); }
    catch (error) { failure(error); }
  });
  const filters = el("form", { class: "row", id: "filters" },
    el("input", { name: "language", placeholder: "language (hi, en…)" }),
    el("input", { name: "speciality", placeholder: "speciality" }),
    el("select", { name: "mode" }, el("option", { value: "" }, "any mode"),
      ...["chat", "voice", "video"].map((m) => el("option", {}, m))),
    el("select", { name: "sort" }, el("option", { value: "rating" }, "best rated"),
      el("option", { value: "price" }, "lowest price")),
    el("label", {}, el("input", { type: "checkbox", name: "online", value: "true" }), " online now"),
    el("button", {}, "Search"));
  const list = el("div", { id: "consultants" });
  const birth = el("section", { id: "birth" });
  const load = async () => {
    const query = new URLSearchParams(Object.entries(formData(filters)).filter(([, v]) => v));
    const page = await state.api.get(`/consultants?${query}`);
    list.replaceChildren(...(page.items.length ? page.items.map(consultantCard)
      : [el("p", { class: "muted" }, "No astrologer matches.")]));
  };
  filters.addEventListener("submit", (event) => { event.preventDefault(); load().catch(failure); });
  view.replaceChildren(
    el("div", { class: "card" }, el("div", { class: "row" },
      el("strong", {}, "Wallet"), el("span", { class: "meter", id: "available" }, rupees(wallet.available_paise)),
      el("span", { class: "muted" }, wallet.held_paise ? `(${rupees(wallet.held_paise)} on hold)` : "")),
      rechargeForm),
    birth, el("h2", {}, "Astrologers"), filters, list);
  state.birthPicker = renderProfiles(birth, state.api);
  await load();
  const timer = setInterval(() => load().catch(() => {}), 15000);
  return () => clearInterval(timer);
}

// ---- astrologer ----------------------------------------------------------------------------

async function consultantHome() {
  const earnings = await state.api.get("/earnings");
  const requests = el("div", { id: "requests" });
  const birthPanels = new Map(); // one panel per request, kept across redraws
  const birthPanel = (id) => {
    if (!birthPanels.has(id)) {
      const panel = el("div", { class: "birth" });
      renderChartPanel(panel, state.api, id);
      birthPanels.set(id, panel);
    }
    return birthPanels.get(id);
  };
  const requestCard = (consultation) => el("div", { class: "card request", "data-id": consultation.id },
    el("div", {}, `${consultation.mode} consultation at ${rupees(consultation.rate_paise)}/min`),
    birthPanel(consultation.id),
    el("div", { class: "row" },
      el("button", { class: "accept", onclick: async () => {
        try {
          await state.socket.send("accept", { consultation_id: consultation.id });
          location.hash = `#/session/${consultation.id}`;
        } catch (error) { failure(error); state.requests.delete(consultation.id); showRequests(); }
      } }, "Accept"),
      el("button", { class: "secondary", onclick: async () => {
        try { await state.socket.send("reject", { consultation_id: consultation.id }); } catch (error) { failure(error); }
        state.requests.delete(consultation.id);
        showRequests();
      } }, "Reject")));
  const showRequests = () => requests.replaceChildren(...(state.requests.size
    ? [...state.requests.values()].map(requestCard)
    : [el("p", { class: "muted" }, "Waiting for requests…")]));
  showRequests();
  // The global listeners (signIn) keep state.requests; these run after them and redraw.
  const offRequest = state.socket.on("consult_request", showRequests);
  const offState = state.socket.on("consult_state", showRequests);
  const away = el("select", { id: "availability", onchange: () =>
    state.socket.send("presence", { status: away.value }).catch(failure) },
    el("option", { value: "online" }, "Available"), el("option", { value: "away" }, "Away"));
  view.replaceChildren(
    el("div", { class: "card row" }, el("strong", {}, "Status"), away,
      el("span", { class: "muted" }, "Earnings"), el("span", { class: "meter" }, rupees(earnings.balance_paise))),
    el("h2", {}, "Incoming requests"), requests);
  return () => { offRequest(); offState(); };
}

// ---- admin ---------------------------------------------------------------------------------

function adminForm(id, fields, label, action) {
  const out = el("pre", { class: "muted" });
  const form = el("form", { class: "stack", id }, ...fields.map(([name, placeholder]) =>
    el("input", { name, placeholder, required: true })), el("button", {}, label));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try { out.textContent = JSON.stringify(await action(formData(form)), null, 2); }
    catch (error) { failure(error); }
  });
  return el("div", { class: "card" }, form, out);
}

async function adminHome() {
  const payouts = await state.api.get("/admin/payouts");
  const items = payouts.items;
  view.replaceChildren(el("h2", {}, "Admin"), el("div", { class: "grid" },
    adminForm("wallet-lookup", [["user_id", "user id"]], "Show wallet",
      ({ user_id }) => state.api.get(`/admin/wallets/${user_id}`)),
    adminForm("media-stats", [["consultation_id", "consultation id"]], "Media stats",
      ({ consultation_id }) => state.api.get(`/admin/consultations/${consultation_id}/media`)),
    adminForm("refund", [["consultation_id", "consultation id"], ["amount_paise", "amount (paise)"],
      ["reason", "reason"]], "Refund",
      ({ consultation_id, amount_paise, reason }) => state.api.post(
        `/admin/consultations/${consultation_id}/refund`, { amount_paise: Number(amount_paise), reason }))),
    el("h3", {}, "Payout requests"),
    ...(items.length ? items.map((p) => el("div", { class: "card row" },
      el("span", {}, `${rupees(p.amount_paise)} · ${p.state}`),
      el("button", { class: "secondary", onclick: () => state.api.post(`/admin/payouts/${p.id}/approve`).then(render, failure) }, "Approve"),
      el("button", { class: "secondary", onclick: () => state.api.post(`/admin/payouts/${p.id}/reject`, { reason: "rejected by admin" }).then(render, failure) }, "Reject")))
      : [el("p", { class: "muted" }, "No payout requests.")]));
}

// ---- a live consultation -------------------------------------------------------------------

async function sessionView(consultationId) {
  const socket = state.socket;
  const seen = new Set();
  let lastSeq = 0;
  let call = null;
  let callStarting = false;
  let consultation = null;
  const log = el("div", { class: "log", id: "chat-log" });
  const typing = el("div", { class: "typing muted", id: "typing" });
  const meter = el("div", { class: "meter", id: "meter" }, "");
  const stateLine = el("div", { id: "consult-state" }, "Connecting…");
  const remoteMedia = el("div", { class: "warning", id: "remote-media", "aria-live": "polite" });
  const cameraOffCover = el("div", { class: "camera-off", id: "remote-camera-off", hidden: true });
  const localVideo = el("video", { class: "local", id: "local-video", autoplay: true, playsinline: true, muted: true });
  localVideo.muted = true; // the attribute alone does not mute playback
  const videos = el("div", { class: "videos", hidden: true },
    el("video", { class: "remote", id: "remote-video", autoplay: true, playsinline: true }),
    cameraOffCover, localVideo);
  const micButton = el("button", { class: "secondary toggle", id: "mute", type: "button", "aria-pressed": "false" }, "Mute");
  const cameraButton = el("button", { class: "secondary toggle", id: "camera", type: "button", "aria-pressed": "false" }, "Camera off");
  const ownMedia = el("span", { class: "muted", id: "own-media" });
  const callControls = el("div", { class: "row call-controls", hidden: true }, micButton, cameraButton, ownMedia);
  const input = el("input", { name: "text", placeholder: "Type a message", autocomplete: "off", maxlength: "4000" });
  const chatForm = el("form", { class: "row", id: "chat-form" }, input, el("button", {}, "Send"));
  const endButton = el("button", { class: "secondary", id: "end" }, "End consultation");

  const addMessage = (m) => {
    if (seen.has(m.seq)) return;
    seen.add(m.seq);
    lastSeq = Math.max(lastSeq, m.seq);
    const text = m.kind === "image" ? "[image]" : m.text;
    log.append(el("div", { class: "msg" + (m.sender_id === state.me.id ? " mine" : ""), "data-seq": m.seq }, text));
    log.scrollTop = log.scrollHeight;
  };

  const startCall = async () => {
    // show() runs for the join reply and for consult_state events; the astrologer's page often
    // gets both at once, and two calls on one socket fight over its one SFU peer connection.
    if (call || callStarting || consultation.mode === "chat" || consultation.state !== "active") return;
    callStarting = true;
    try {
      const { ice_servers } = await state.api.get("/turn/credentials");
      call = new CallSession(socket, consultationId,
        { video: consultation.mode === "video", iceServers: ice_servers, candidateFilter });
    } finally {
      callStarting = false;
    }
    const local = await call.start();
    videos.hidden = false;
    localVideo.srcObject = local;
    document.getElementById("remote-video").srcObject = call.remote;
    cameraButton.hidden = consultation.mode !== "video";
    showOwnMedia();
    callControls.hidden = false;
    window.kundlinowCall = call; // for diagnostics (getStats) from the console
    // Best effort: it fails only if the consultation ended or the socket dropped meanwhile,
    // and the rejoin after a drop announces again.
    call.announce().catch(() => {});
  };

  // The pressed state of our toggles and our preview follow the call, not the clicks.
  const showOwnMedia = () => {
    micButton.setAttribute("aria-pressed", String(!call.microphoneOn));
    cameraButton.setAttribute("aria-pressed", String(!call.cameraOn));
    localVideo.hidden = !call.cameraOn;
    ownMedia.textContent = [call.microphoneOn ? "" : "You are muted",
      call.video && !call.cameraOn ? "your camera is off" : ""].filter(Boolean).join(" · ");
  };

  const toggle = (button, change) => button.addEventListener("click", async () => {
    if (!call) return;
    button.disabled = true; // the camera takes a moment to open; no second camera meanwhile
    try { await change(call); } catch (error) { failure(error); }
    button.disabled = false;
    if (call) showOwnMedia();
  });
  toggle(micButton, (c) => c.setMicrophone(!c.microphoneOn));
  toggle(cameraButton, (c) => c.setCamera(!c.cameraOn));

  // The other party's microphone and camera, as their media_state events tell.
  const showRemoteMedia = ({ role, audio, video }) => {
    const who = role === "consultant" ? "Astrologer" : "Caller";
    const cameraOff = consultation.mode === "video" && !video;
    remoteMedia.textContent = [audio ? "" : `${who} muted`, cameraOff ? `${who}'s camera is off` : ""]
      .filter(Boolean).join(" · ");
    cameraOffCover.textContent = cameraOff ? `${who}'s camera is off` : "";
    cameraOffCover.hidden = !cameraOff;
  };

  const endCall = () => {
    if (call) call.close();
    call = null;
    videos.hidden = true;
    callControls.hidden = true;
    remoteMedia.textContent = "";
    cameraOffCover.hidden = true;
  };

  const show = (c) => {
    consultation = c;
    const labels = { requested: "Waiting for the astrologer to accept…", active: "Live", ended: `Ended (${c.end_reason})` };
    stateLine.textContent = `${c.mode} consultation — ${labels[c.state]}`;
    meter.textContent = `${c.minutes_charged} min · ${rupees(c.amount_charged_paise)} at ${rupees(c.rate_paise)}/min`;
    chatForm.hidden = c.state !== "active";
    endButton.textContent = c.state === "requested" ? "Cancel request" : "End consultation";
    endButton.hidden = c.state === "ended";
    if (c.state === "active") startCall().catch(failure);
    if (c.state === "ended") endCall();
  };

  const offerRating = () => {
    const box = el("div", { class: "row", id: "rating" }, el("span", {}, "Rate this consultation:"),
      ...[1, 2, 3, 4, 5].map((stars) => el("button", { class: "secondary", "data-stars": stars, onclick: async () => {
        try {
          await state.api.post(`/consultations/${consultationId}/rating`, { stars });
          box.replaceChildren(el("span", {}, `Thanks for rating ${"★".repeat(stars)}`));
        } catch (error) { failure(error); }
      } }, "★".repeat(stars))));
    chatForm.after(box);
  };

  const join = async () => {
    const reply = await socket.send("join_consult", { consultation_id: consultationId, since: lastSeq });
    show(reply.consultation);
    if (call) call.announce().catch(() => {}); // a change made while the socket was down
  };

  const mine = (handler) => (data) => {
    const id = data.consultation_id || (data.consultation && data.consultation.id) || (data.message && data.message.consultation_id);
    if (id === consultationId) handler(data);
  };
  const offs = [
    socket.on("message", mine(({ message }) => addMessage(message))),
    socket.on("consult_state", mine(({ consultation: c }) => show(c))),
    socket.on("typing", mine((data) => {
      typing.textContent = data.typing && data.user_id !== state.me.id ? "typing…" : "";
    })),
    socket.on("billing_tick", mine((data) => {
      meter.textContent = `${data.minutes} min · ${rupees(data.amount_paise)}`
        + (data.balance_paise !== undefined ? ` · balance ${rupees(data.balance_paise)}` : "");
      refreshBalance().catch(() => {});
    })),
    socket.on("balance_warning", mine((data) => {
      tell(`Only ${data.minutes_left} minute(s) of balance left — recharge to keep talking.`);
    })),
    socket.on("presence", mine((data) => {
      if (data.user_id !== state.me.id) {
        tell(data.status === "reconnecting" ? "The other party lost connection — waiting for them…" : "");
        if (data.status === "online" && call) call.announce().catch(() => {});
      }
    })),
    socket.on("media_state", mine((data) => {
      if (data.user_id !== state.me.id) showRemoteMedia(data);
    })),
    socket.on("session_end", mine((data) => {
      stateLine.textContent = `Ended (${data.reason}): ${data.minutes} min, ${rupees(data.amount_paise)}`;
      chatForm.hidden = true;
      endButton.hidden = true;
      if (state.me.role === "user" && data.minutes > 0) offerRating();
      endCall();
      refreshBalance().catch(() => {});
    })),
    socket.on("connected", () => join().catch(failure)), // resume after a reconnect, with `since`
  ];

  let typingTimer = null;
  input.addEventListener("input", () => {
    if (!typingTimer) socket.send("typing", { consultation_id: consultationId, typing: true }).catch(() => {});
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      typingTimer = null;
      socket.send("typing", { consultation_id: consultationId, typing: false }).catch(() => {});
    }, 2500);
  });
  chatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      const reply = await socket.send("message",
        { consultation_id: consultationId, client_id: crypto.randomUUID(), text });
      addMessage(reply.message);
    } catch (error) { failure(error); input.value = text; }
  });
  endButton.addEventListener("click", async () => {
    try { await socket.send("session_end", { consultation_id: consultationId }); } catch (error) { failure(error); }
  });

  const birthSide = el("aside", { class: "card birth", id: "birth-side" });
  if (state.me.role === "consultant") renderChartPanel(birthSide, state.api, consultationId);
  view.replaceChildren(el("div", { class: "session" },
    el("div", {}, stateLine, meter, remoteMedia, videos, callControls,
      state.me.role === "consultant" ? birthSide : null),
    el("div", { class: "card chat" }, log, typing, chatForm, endButton)));
  await join();
  return () => {
    for (const off of offs) off();
    if (call) call.close();
    socket.send("leave_consult", { consultation_id: consultationId }).catch(() => {});
  };
}

// ---- routing -------------------------------------------------------------------------------

async function render() {
  leaveView();
  leaveView = () => {};
  try {
    if (!state.me) { loginView(); return; }
    const session = location.hash.match(/^#\/session\/([0-9a-f-]{36})$/);
    const homes = { user: callerHome, consultant: consultantHome, admin: adminHome };
    const leave = session ? await sessionView(session[1]) : await homes[state.me.role]();
    if (typeof leave === "function") leaveView = leave;
  } catch (error) { failure(error); }
}

document.getElementById("logout").addEventListener("click", signOut);
window.addEventListener("hashchange", render);
(async () => {
  if (state.api.token) {
    try { await signIn(state.api.token); } catch { sessionStorage.removeItem(TOKEN_KEY); state.me = null; }
  }
  await render();
})();
