// Every /v1 call goes through here: the API key (asked once on a 401, kept in
// sessionStorage) rides in the Authorization header, never in a URL, and error bodies
// ({"error","message","field"}) become ApiError so forms can show the field's message.

const KEY_STORE = "curvegan.apiKey";
let asking = null; // one dialog for every call that met a 401 at the same time
// Set when the dialog was cancelled: later 401s fail quietly instead of asking again at every
// poll, until the header's "API key" button (changeKey) opens the dialog on purpose.
let declined = false;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error;
    this.field = body?.field;
  }
}

export const isAbort = (e) => e?.name === "AbortError";

// A header value is a ByteString: fetch() throws on a character above U+00FF ("clé" passes,
// "🔑" does not). The key goes as its UTF-8 bytes, one character per byte, which the server
// compares with its key's UTF-8 bytes.
const utf8Bytes = (text) => String.fromCharCode(...new TextEncoder().encode(text));

function authHeaders(extra) {
  const headers = new Headers(extra);
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.set("Authorization", `Bearer ${utf8Bytes(key)}`);
  return headers;
}

// Resolves once the user gave a key; rejects when they cancel (the call fails with the 401).
// `message` is the 401's own; `reason` what the dialog says (why it opened).
function askKey(message, reason) {
  if (asking) return asking;
  if (declined) return Promise.reject(new ApiError(401, { error: "unauthorized", message }));
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent = reason ?? (sessionStorage.getItem(KEY_STORE)
    ? `The key was refused: ${message}`
    : "This server asks for an API key.");
  input.value = "";
  asking = new Promise((resolve, reject) => {
    dialog.addEventListener("close", () => {
      asking = null;
      declined = !(dialog.returnValue === "ok" && input.value);
      if (declined) reject(new ApiError(401, { error: "unauthorized", message }));
      else {
        sessionStorage.setItem(KEY_STORE, input.value.trim());
        resolve();
      }
    }, { once: true });
  });
  dialog.showModal();
  return asking;
}

// The header's "API key" button: set or change the key, then reload the view with it.
export function changeKey() {
  declined = false;
  askKey("no key given", "The key this tab sends with every call (kept until the tab closes).").then(() => window.dispatchEvent(new HashChangeEvent("hashchange")),
    () => {});
}

async function errorBody(response) {
  try { return await response.json(); } catch { return null; }
}

// fetch() with the key; a 401 asks for the key and tries again with it.
export async function request(method, path, { json, body, headers, signal } = {}) {
  for (;;) {
    const init = { method, headers: authHeaders(headers), signal };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers.set("Content-Type", "application/json");
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      await askKey((await errorBody(response))?.message || "unauthorized");
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await errorBody(response));
    return response;
  }
}

export const getJson = async (path, opts) => (await request("GET", path, opts)).json();
export const postJson = async (path, json, opts) =>
  (await request("POST", path, { ...opts, json })).json();

// Server-sent events read with fetch(), since EventSource cannot send the Authorization
// header. onEvent(name, data, id) is called per frame; the stream is read again from the
// last id after a drop, until done() says the last frame seen was final, the server answers
// 404 (deleted), or signal aborts. A closed stream after a final frame is the normal end.
// A `dropped` frame (the server let go of a reader that fell behind) is a drop too: reading
// stops there, whether or not the connection closes, and the stream is opened again from the
// last id this page got (its own count, not the frame's: that is what it has drawn).
export async function followEvents(path, { onEvent, done, signal, query = {} }) {
  let lastId = null;
  let delay = 500;
  const handle = (name, data, id) => {
    if (id !== null) lastId = id;
    onEvent(name, data, id);
  };
  while (!signal?.aborted) {
    const headers = { Accept: "text/event-stream" };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const url = `${path}?${new URLSearchParams(query)}`;
    try {
      const response = await request("GET", url, { headers, signal });
      delay = 500;
      await readFrames(response.body, handle, signal);
    } catch (e) {
      if (isAbort(e) || signal?.aborted) return;
      if (e instanceof ApiError && (e.status === 404 || e.status === 401)) throw e;
      // Anything else (server restarting, 429 too many streams, a cut connection): retry.
    }
    if (done()) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

// Parses frames as they arrive, until the server closes the stream or sends `dropped`.
async function readFrames(stream, onEvent, signal) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let frame = { event: "message", data: [], id: null };
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") {
          if (frame.data.length) {
            onEvent(frame.event, JSON.parse(frame.data.join("\n")), frame.id);
          }
          if (frame.event === "dropped") {
            await abort();
            return;
          }
          frame = { event: "message", data: [], id: null };
        } else if (!line.startsWith(":")) { // ":" lines are keep-alives
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") frame.data.push(value);
          else if (field === "event") frame.event = value;
          else if (field === "id") frame.id = value;
        }
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}
