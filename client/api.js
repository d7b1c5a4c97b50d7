// REST and WebSocket access to the kundlinow server (protocol: docs/PROTOCOL.md).

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || { code: "HTTP_" + status, message: "request failed" };
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.details = error.details || {};
  }
}

export class Api {
  constructor(token = null) {
    this.token = token;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = "Bearer " + this.token;
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body = {}) { return this.request("POST", path, body); }
  patch(path, body) { return this.request("PATCH", path, body); }
  put(path, body) { return this.request("PUT", path, body); }

  // Whether the server has an operation (its /openapi.json, fetched once): screens built
  // against endpoints other parts of the platform add (session log, recordings) show an empty
  // state until then, without a request that would 404.
  async has(template, method = "get") {
    if (!Api.spec) Api.spec = fetch("/openapi.json").then((r) => r.json()).catch(() => ({ paths: {} }));
    const spec = await Api.spec;
    return Boolean(spec.paths && spec.paths[template] && spec.paths[template][method]);
  }

  // GET `path` when the server documents `template`, else null.
  async optional(template, path) {
    return (await this.has(template)) ? this.get(path) : null;
  }

  // A raw body (an image) with its own Content-Type.
  async upload(method, path, blob) {
    const headers = { Accept: "application/json", "Content-Type": blob.type };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    const response = await fetch(path, { method, headers, body: blob });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

// One signalling socket per device: request/reply with ids, server events to listeners, and
// automatic reconnection (the session view resumes with `since`, so no message is lost).
export class Signalling extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.nextId = 1;
    this.pending = new Map();
    this.closed = false;
    this.retryMs = 500;
    this.ready = new Promise((resolve) => this.open(resolve));
  }

  // Opens a socket; `resolve` settles `ready` at its hello. After a close, `ready` is pending
  // again until the next hello, so a send made meanwhile waits instead of vanishing into the
  // closed socket (WebSocket.send on a closed socket drops the frame without an error).
  open(resolve) {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    // The token travels as a subprotocol, never in the URL (URLs end up in logs).
    const ws = new WebSocket(url, ["kundlinow.v1", "bearer." + this.token]);
    let greeted = false;
    this.ws = ws;
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "hello") greeted = true;
      this.onFrame(frame, resolve);
    };
    ws.onclose = () => {
      for (const { reject } of this.pending.values()) reject(new Error("connection lost"));
      this.pending.clear();
      this.dispatchEvent(new CustomEvent("disconnected"));
      if (this.closed) return;
      // A socket that never said hello leaves `ready` pending: the next one settles it.
      let next = resolve;
      if (greeted) this.ready = new Promise((r) => { next = r; });
      setTimeout(() => this.open(next), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 8000);
    };
  }

  onFrame(frame, resolveReady) {
    if (frame.type === "hello") {
      this.retryMs = 500;
      this.hello = frame.data;
      resolveReady();
      this.dispatchEvent(new CustomEvent("connected", { detail: frame.data }));
      return;
    }
    if ((frame.type === "ack" || frame.type === "error") && this.pending.has(frame.id)) {
      const { resolve, reject } = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      if (frame.type === "ack") resolve(frame.data || {});
      else {
        reject(Object.assign(new Error(frame.data.message),
          { code: frame.data.code, details: frame.data.details || {} }));
      }
      return;
    }
    this.dispatchEvent(new CustomEvent(frame.type, { detail: frame.data }));
  }

  async send(type, data = {}) {
    await this.ready;
    if (this.ws.readyState !== WebSocket.OPEN) { // closing after its hello: wait for the next one
      await new Promise((resolve) => this.addEventListener("connected", resolve, { once: true }));
      return this.send(type, data);
    }
    const id = "c" + this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type, id, data }));
    });
  }

  // Returns a function that removes the listener (views come and go, the socket stays).
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  }
}
