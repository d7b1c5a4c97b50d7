// A consult participant in the page: WebSocket signalling (kundlinow.v1) + RTCPeerConnection
// through the SFU. Keeps only 127.0.0.1 candidates (media stays on loopback).
async ({ wsUrl, token, consultationId, codec }) => {
  const state = { log: [], answered: 0, error: null };
  window.__peer = state;
  const ws = new WebSocket(wsUrl, ["kundlinow.v1", "bearer." + token]);
  let nextId = 1;
  const pending = new Map();
  const send = (type, data) => new Promise((resolve, reject) => {
    const id = "p" + nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ type, id, data }));
  });
  const loopbackOnly = (sdp) => sdp.split("\r\n").filter(
    (l) => !l.startsWith("a=candidate:") || l.includes(" 127.0.0.1 ")).join("\r\n");
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  ws.onmessage = async (ev) => {
    const frame = JSON.parse(ev.data);
    if ((frame.type === "ack" || frame.type === "error") && pending.has(frame.id)) {
      const p = pending.get(frame.id);
      pending.delete(frame.id);
      frame.type === "ack" ? p.resolve(frame.data) : p.reject(new Error(JSON.stringify(frame.data)));
      return;
    }
    try {
      if (frame.type === "call_answer" && frame.data.from === "sfu") {
        await pc.setRemoteDescription({ type: "answer", sdp: frame.data.sdp });
        state.log.push("answer applied");
      } else if (frame.type === "call_offer" && frame.data.from === "sfu") {
        await pc.setRemoteDescription({ type: "offer", sdp: frame.data.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        await gathered(pc);
        await send("call_answer", { consultation_id: consultationId,
                                    sdp: loopbackOnly(pc.localDescription.sdp) });
        state.answered += 1;
      }
    } catch (e) { state.error = String(e); }
  };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  await send("join_consult", { consultation_id: consultationId });
  const media = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 320, height: 240, frameRate: 30 } });
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, { direction: "sendrecv" });
    if (track.kind === "video") {
      const caps = RTCRtpReceiver.getCapabilities("video").codecs;
      const preferred = caps.filter((c) => c.mimeType.toLowerCase() === codec.toLowerCase());
      if (!preferred.length) throw new Error("codec not available: " + codec);
      t.setCodecPreferences([...preferred, ...caps.filter((c) => c.mimeType === "video/rtx")]);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  await send("call_offer", { consultation_id: consultationId,
                             sdp: loopbackOnly(pc.localDescription.sdp) });
  return true;
}
