// A live consultation's state for the consult screen: joins the room on the socket (and again
// after a reconnect, with `since` so no chat message is lost), follows its events and runs the
// call. Returns plain values and actions; the screen only renders them.
import { useEffect, useReducer, useRef } from "/client/lib/html.js";
import { CallSession, ObserverSession } from "/client/call.js";
import { store, tell } from "/client/store.js";
import { app, loopback } from "/client/session.js";
import { errorSentence } from "/client/format.js";

const INITIAL = {
  consultation: null, names: null, messages: [], typing: false, tick: null, warning: null,
  ended: null, remote: null, quality: null, media: {}, own: { microphone: true, camera: true }, peerAway: false,
  calling: false, callError: null,
};

function reduce(state, action) {
  switch (action.type) {
    case "consultation": return { ...state, consultation: action.value };
    case "names": return { ...state, names: action.value };
    case "message":
      if (state.messages.some((m) => m.seq === action.value.seq)) return state;
      return { ...state, messages: [...state.messages, action.value].sort((a, b) => a.seq - b.seq) };
    case "ended": return { ...state, ended: action.value, calling: false, warning: null, remote: null, quality: null, media: {} };
    case "media_state": return { ...state, remote: action.value,
      media: { ...state.media, [action.value.user_id]: action.value } };
    default: return { ...state, ...action.value };
  }
}

const filterLoopback = loopback ? (line) => line.includes(" 127.0.0.1 ") : null;

export function useConsultation(id) {
  const [state, dispatch] = useReducer(reduce, INITIAL);
  const call = useRef(null);
  const starting = useRef(false);
  // The join reply's ICE servers: an observer's (admins get no TURN credential; the parties
  // fetch theirs when the call starts, once they are parties of an accepted consultation).
  const joinIceServers = useRef(null);
  const lastSeq = useRef(0);
  const me = store.state.me;
  const socket = app.socket;
  const set = (value) => dispatch({ type: "set", value });

  const showOwn = () => {
    if (call.current) set({ own: { microphone: call.current.microphoneOn, camera: call.current.cameraOn } });
  };

  const stopCall = () => {
    if (call.current) call.current.close();
    call.current = null;
    window.kundlinowCall = null;
  };

  const newSession = async (c) => {
    const options = { video: c.mode === "video", candidateFilter: filterLoopback };
    if (me.role === "admin") {
      return new ObserverSession(socket, id, { ...options, iceServers: joinIceServers.current,
        parties: [c.caller_id, c.consultant_id] });
    }
    const { ice_servers } = await app.api.get("/turn/credentials");
    return new CallSession(socket, id, { ...options, iceServers: ice_servers });
  };

  // One call per screen: the join reply and consult_state often arrive together, and two calls
  // on one socket would fight over its one SFU peer connection. An observer starts from the join
  // reply (its ICE servers come with it).
  const startCall = async (c) => {
    if (call.current || starting.current || c.mode === "chat" || c.state !== "active") return;
    if (me.role === "admin" && !joinIceServers.current) return;
    starting.current = true;
    try {
      const session = await newSession(c);
      call.current = session;
      window.kundlinowCall = session; // for diagnostics (getStats) from the console and tests
      await session.start();
      set({ calling: true, callError: null });
      showOwn();
      await session.announce().catch(() => {});
    } catch (error) {
      stopCall();
      set({ callError: error.name === "NotAllowedError"
        ? "Allow the microphone and camera in your browser to talk." : errorSentence(error) });
    } finally {
      starting.current = false;
    }
  };

  const show = (c) => {
    dispatch({ type: "consultation", value: c });
    if (c.state === "active") startCall(c);
    if (c.state === "ended") stopCall();
  };

  useEffect(() => {
    let alive = true;
    const mine = (handler) => (data) => {
      const room = data.consultation_id || (data.consultation && data.consultation.id)
        || (data.message && data.message.consultation_id);
      if (alive && room === id) handler(data);
    };
    const join = async () => {
      const reply = await socket.send("join_consult", { consultation_id: id, since: lastSeq.current });
      if (!alive) return;
      joinIceServers.current = reply.ice_servers || [];
      show(reply.consultation);
      if (reply.consultation.state === "ended") {
        const c = reply.consultation;
        dispatch({ type: "ended", value: { reason: c.end_reason, minutes: c.minutes_charged,
          amount_paise: c.amount_charged_paise } });
      }
      if (call.current) call.current.announce().catch(() => {}); // a change made while we were away
    };
    const offs = [
      socket.on("message", mine(({ message }) => {
        lastSeq.current = Math.max(lastSeq.current, message.seq);
        dispatch({ type: "message", value: message });
      })),
      socket.on("consult_state", mine(({ consultation }) => show(consultation))),
      socket.on("typing", mine((d) => { if (d.user_id !== me.id) set({ typing: d.typing }); })),
      socket.on("billing_tick", mine((d) => set({ tick: d }))),
      socket.on("balance_warning", mine((d) => set({ warning: d.minutes_left }))),
      socket.on("media_state", mine((d) => { if (d.user_id !== me.id) dispatch({ type: "media_state", value: d }); })),
      // the SFU paused (or resumed) video to one party whose downlink is too weak for it
      socket.on("media_quality", mine((d) => set({ quality: d.video_paused ? d : null }))),
      socket.on("presence", mine((d) => {
        if (d.user_id === me.id) return;
        set({ peerAway: d.status === "reconnecting" });
        if (d.status === "online" && call.current) call.current.announce().catch(() => {});
      })),
      socket.on("session_end", mine((d) => {
        stopCall();
        dispatch({ type: "ended", value: { reason: d.reason, minutes: d.minutes, amount_paise: d.amount_paise } });
      })),
      socket.on("connected", () => join().catch((error) => tell(errorSentence(error), "error"))),
    ];
    join().catch((error) => tell(errorSentence(error), "error"));
    app.api.get(`/consultations/${id}/receipt`).then((r) => {
      if (alive) dispatch({ type: "names", value: { caller: r.consultation.caller.name,
        astrologer: r.consultation.astrologer.name, birthShared: r.consultation.birth_shared } });
    }).catch(() => {});
    return () => {
      alive = false;
      for (const off of offs) off();
      stopCall();
      socket.send("leave_consult", { consultation_id: id }).catch(() => {});
    };
  }, [id]);

  const actions = {
    async send(text) {
      const reply = await socket.send("message", { consultation_id: id, client_id: crypto.randomUUID(), text });
      lastSeq.current = Math.max(lastSeq.current, reply.message.seq);
      dispatch({ type: "message", value: reply.message });
    },
    typing(on) { socket.send("typing", { consultation_id: id, typing: on }).catch(() => {}); },
    async end() { await socket.send("session_end", { consultation_id: id }); },
    async toggleMicrophone() {
      if (!call.current) return;
      await call.current.setMicrophone(!call.current.microphoneOn);
      showOwn();
    },
    async toggleCamera() {
      if (!call.current) return;
      await call.current.setCamera(!call.current.cameraOn);
      showOwn();
    },
    clearWarning() { set({ warning: null }); },
    remoteStream() { return call.current ? call.current.remote : null; },
    partyStream(userId) { return call.current && call.current.streamOf ? call.current.streamOf(userId) : null; },
    localStream() { return call.current ? call.current.local : null; },
  };
  return [state, actions];
}
