// The signed-in session: token, REST client, the one signalling socket, and the socket events
// that feed the store for every screen (wallet, astrologer statuses, requests, waitlist).
import { Api, Signalling } from "/client/api.js";
import { store, tell } from "/client/store.js";
import { navigate } from "/client/router.js";
import { rupees } from "/client/format.js";

const TOKEN_KEY = "kundlinow.token";
export const app = { api: new Api(sessionStorage.getItem(TOKEN_KEY)), socket: null };

export async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  app.api = new Api(token);
  const me = await app.api.get("/me");
  app.socket = new Signalling(token);
  wireSocket(app.socket, me);
  store.set({ me });
  if (me.role === "user") await refreshWallet();
}

export async function resume() {
  if (!app.api.token) return;
  try { await signIn(app.api.token); } catch {
    sessionStorage.removeItem(TOKEN_KEY);
    app.api = new Api(null);
  }
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (app.socket) app.socket.close();
  app.socket = null;
  app.api = new Api(null);
  store.set({ me: null, wallet: null, requests: {}, statuses: {}, waitlist: null, notice: null });
  navigate("/app/login", { replace: true });
}

export async function refreshWallet() {
  if (!store.state.me || store.state.me.role !== "user") return;
  store.set({ wallet: await app.api.get("/wallet") });
}

// Watch these astrologers' statuses: the socket answers with the current ones and then pushes
// every change (`consultant_status`), so lists and badges never poll.
export async function watchAstrologers(ids) {
  if (!app.socket || !ids.length) return;
  const reply = await app.socket.send("presence", { consultant_ids: ids, watch: true });
  if (reply.statuses) store.set((s) => ({ statuses: { ...s.statuses, ...reply.statuses } }));
}

// Test and single-machine demos: `?loopback` keeps only 127.0.0.1 ICE candidates.
export const loopback = new URLSearchParams(location.search).has("loopback")
  || sessionStorage.getItem("kundlinow.loopback") === "1";
if (new URLSearchParams(location.search).has("loopback")) sessionStorage.setItem("kundlinow.loopback", "1");

function wireSocket(socket, me) {
  socket.on("connected", () => {
    if (me.role === "consultant" && store.state.online !== false) {
      socket.send("presence", { status: "online" }).catch(() => {});
    }
    const watched = Object.keys(store.state.statuses);
    if (watched.length) watchAstrologers(watched).catch(() => {});
  });
  socket.on("consultant_status", ({ consultant_id, status }) => {
    store.set((s) => ({ statuses: { ...s.statuses, [consultant_id]: status } }));
  });
  socket.on("consult_request", ({ consultation }) => {
    store.set((s) => ({ requests: { ...s.requests,
      [consultation.id]: { ...consultation, received_at: Date.now() } } }));
  });
  socket.on("consult_state", ({ consultation }) => {
    if (consultation.state === "requested") return;
    store.set((s) => {
      const requests = { ...s.requests };
      delete requests[consultation.id];
      return { requests };
    });
  });
  socket.on("billing_tick", (data) => {
    if (data.balance_paise !== null && data.balance_paise !== undefined) refreshWallet().catch(() => {});
  });
  socket.on("wallet", (wallet) => store.set({ wallet }));
  socket.on("session_end", () => refreshWallet().catch(() => {}));
  socket.on("waitlist", (data) => {
    if (data.status === "offered") {
      store.set((s) => ({ waitlist: { ...(s.waitlist || {}), ...data } }));
      tell(`Your astrologer is free now. Start within ${Math.round(data.offer_expires_in_s)} seconds.`);
    } else {
      store.set({ waitlist: null });
      tell("Your turn in the queue has passed.");
    }
  });
}

export async function recharge(paise) {
  const order = await app.api.post("/wallet/recharge", { amount_paise: paise });
  let checkout;
  if (order.gateway === "simulator") {
    // Development: the server's gateway simulator "pays" and signs like Razorpay.
    checkout = (await app.api.post("/wallet/recharge/simulate", { order_id: order.order_id })).checkout;
  } else {
    checkout = await razorpayCheckout(order);
  }
  await app.api.post("/wallet/recharge/verify", checkout);
  await refreshWallet();
  tell(`${rupees(paise)} added to your wallet.`);
}

// Razorpay Checkout (https://razorpay.com/docs/payments/payment-gateway/web-integration/standard/)
// is loaded only when a real gateway is configured.
async function razorpayCheckout(order) {
  if (!window.Razorpay) {
    await new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "https://checkout.razorpay.com/v1/checkout.js";
      script.onload = resolve;
      script.onerror = () => reject(new Error("The payment page could not be loaded."));
      document.head.append(script);
    });
  }
  return new Promise((resolve, reject) => {
    new window.Razorpay({
      key: order.key_id, order_id: order.order_id, amount: order.amount_paise, currency: "INR",
      name: "kundlinow", handler: resolve,
      modal: { ondismiss: () => reject(new Error("Payment cancelled.")) },
    }).open();
  });
}
