// A voice or video call through the SFU (RFC 9429 JSEP over the kundlinow.v1 socket).
//
// The browser offers once with its microphone (and camera); the server answers. When the other
// party publishes or leaves, the server sends its own offer (renegotiation) and we answer.
// Candidates are sent inside the SDP after gathering completes (no trickle): host and TURN
// candidates gather in well under a second, and one round trip is simpler to reason about.
//
// Microphone and camera switch without renegotiation. Mute disables the audio track (the browser
// keeps sending RTP carrying silence). Camera off goes further: it stops the camera track, so the
// camera (and its light) is released, and replaceTrack(null) (W3C WebRTC 1.0 §5.2) stops video
// RTP altogether; camera on opens the camera again and replaces the new track into the same
// sender. Each change is told to the other party with `media_state`, since the receiver cannot
// tell silence or a paused stream from a network problem.

const CAMERA = { width: 640, height: 480, frameRate: 30 };

export class CallSession {
  constructor(signalling, consultationId, { video, iceServers = [], candidateFilter = null }) {
    this.signalling = signalling;
    this.consultationId = consultationId;
    this.video = video;
    this.candidateFilter = candidateFilter;
    this.pc = new RTCPeerConnection({ iceServers });
    this.remote = new MediaStream();
    this.unsubscribe = [
      signalling.on("call_answer", (data) => this.onAnswer(data)),
      signalling.on("call_offer", (data) => this.onOffer(data)),
      signalling.on("ice_candidate", (data) => this.onCandidate(data)),
    ];
    this.pc.ontrack = (event) => this.received(event);
  }

  async start() {
    this.local = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: this.video ? CAMERA : false,
    });
    for (const track of this.local.getTracks()) {
      const { sender } = this.pc.addTransceiver(track, { direction: "sendrecv", streams: [this.local] });
      if (track.kind === "video") this.cameraSender = sender;
    }
    await this.offer();
    return this.local;
  }

  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this.send("call_offer");
  }

  // The other party's tracks (the SFU forwards only theirs to a party).
  received(event) { this.remote.addTrack(event.track); }

  // Before start() has its tracks (the camera prompt, a slow device) nothing is on; callers may
  // ask at any time, e.g. when the other party comes back and we re-announce.
  get microphoneOn() { return Boolean(this.local) && this.local.getAudioTracks().some((track) => track.enabled); }

  get cameraOn() { return Boolean(this.cameraSender && this.cameraSender.track); }

  async setMicrophone(on) {
    if (!this.local) return;
    for (const track of this.local.getAudioTracks()) track.enabled = on;
    await this.announce();
  }

  async setCamera(on) {
    if (!this.cameraSender || on === this.cameraOn) return;
    if (on) {
      const [track] = (await navigator.mediaDevices.getUserMedia({ video: CAMERA })).getVideoTracks();
      try {
        await this.cameraSender.replaceTrack(track);
      } catch (error) {
        track.stop(); // the call closed while the camera opened: do not leave it (and its light) on
        throw error;
      }
      this.local.addTrack(track);
    } else {
      const track = this.cameraSender.track;
      await this.cameraSender.replaceTrack(null);
      track.stop();
      this.local.removeTrack(track);
    }
    await this.announce();
  }

  // Our microphone/camera state to the room: after each change, and (from the consult view) when
  // the call starts and after either party rejoins, since the server does not keep it.
  announce() {
    if (!this.local) return Promise.resolve();
    return this.signalling.send("media_state", {
      consultation_id: this.consultationId, audio: this.microphoneOn, video: this.cameraOn,
    });
  }

  mine(data) { return data.consultation_id === this.consultationId && data.from === "sfu"; }

  async onAnswer(data) {
    if (this.mine(data)) await this.pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
  }

  async onOffer(data) {
    if (!this.mine(data)) return;
    await this.pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await this.send("call_answer");
  }

  async onCandidate(data) {
    if (this.mine(data) && data.candidate) await this.pc.addIceCandidate(data.candidate);
  }

  async send(type) {
    await this.gathered();
    await this.signalling.send(type, {
      consultation_id: this.consultationId, sdp: this.filterSdp(this.pc.localDescription.sdp),
    });
  }

  gathered() {
    return new Promise((resolve) => {
      if (this.pc.iceGatheringState === "complete") return resolve();
      const check = () => {
        if (this.pc.iceGatheringState !== "complete") return;
        this.pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      this.pc.addEventListener("icegatheringstatechange", check);
    });
  }

  filterSdp(sdp) {
    if (!this.candidateFilter) return sdp;
    return sdp.split("\r\n")
      .filter((line) => !line.startsWith("a=candidate:") || this.candidateFilter(line))
      .join("\r\n");
  }

  async stats() {
    const report = await this.pc.getStats();
    const inbound = {};
    report.forEach((s) => { if (s.type === "inbound-rtp") inbound[s.kind] = s; });
    return inbound;
  }

  close() {
    for (const off of this.unsubscribe) off();
    for (const track of this.local ? this.local.getTracks() : []) track.stop();
    this.pc.close();
  }
}

// An admin observing a consultation: receives both parties, sends nothing and never announces a
// microphone or camera. The offer carries one inactive m-section per kind, only to bring up the
// transport; the SFU then offers each party's tracks on m-sections it adds, whose stream id
// (msid, RFC 8830 §2) is that party's user id, so each picture and voice is told apart.
export class ObserverSession extends CallSession {
  constructor(signalling, consultationId, { parties, ...options }) {
    super(signalling, consultationId, options);
    this.streams = new Map(parties.map((userId) => [userId, new MediaStream()]));
  }

  async start() {
    for (const kind of this.video ? ["audio", "video"] : ["audio"]) {
      this.pc.addTransceiver(kind, { direction: "inactive" });
    }
    await this.offer();
    return null;
  }

  received(event) {
    const party = event.streams.length ? this.streams.get(event.streams[0].id) : undefined;
    if (party) party.addTrack(event.track);
  }

  streamOf(userId) { return this.streams.get(userId) || null; }

  announce() { return Promise.resolve(); }
}
