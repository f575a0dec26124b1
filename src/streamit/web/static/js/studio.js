// The studio's stream page: reveal and copy the stream key, live status without reloads, the preview
// player and the session history; on the stream list, status badges that follow the streams.  Everything it needs comes from data- attributes of #studio-stream
// (no inline scripts: the Content-Security-Policy forbids them).

const POLL_MS = 3000;

const root = document.getElementById("studio-stream");

function text(id, value) {
  const element = document.getElementById(id);
  if (element) {
    element.textContent = value;
  }
}

function formatUptime(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** POST with the session's CSRF token in the X-CSRF-Token header; resolves to the parsed JSON body. */
async function postJson(url) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": root.dataset.csrfToken, Accept: "application/json" },
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `The server answered ${response.status}.`;
    throw new Error(detail);
  }
  return body;
}

// ---- stream key: reveal, hide, copy -------------------------------------------------------------

function setupKey() {
  const keyInput = document.getElementById("stream-key");
  const revealButton = document.getElementById("reveal-key");
  const keyCopy = document.querySelector('[data-copy="stream-key"]');
  let revealed = false;

  revealButton.addEventListener("click", async () => {
    if (revealed) {
      keyInput.type = "password";
      keyInput.value = "";
      revealButton.textContent = "Reveal key";
      keyCopy.disabled = true;
      revealed = false;
      text("copy-status", "The stream key is hidden.");
      return;
    }
    revealButton.disabled = true;
    try {
      const body = await postJson(root.dataset.keyUrl);
      keyInput.value = body.stream_key;
      keyInput.type = "text";
      revealButton.textContent = "Hide key";
      keyCopy.disabled = false;
      revealed = true;
      text("copy-status", "The stream key is shown. Keep it secret.");
    } catch (error) {
      text("copy-status", `Could not show the key: ${error.message}`);
    } finally {
      revealButton.disabled = false;
    }
  });

  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copyField(document.getElementById(button.dataset.copy)));
  }
}

async function copyField(input) {
  const label = input.id === "stream-key" ? "Stream key" : "Server";
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(input.value);
      text("copy-status", `${label} copied to the clipboard.`);
      return;
    } catch {
      // Permission refused: fall through to selecting the text for the user to copy.
    }
  }
  // Without the Clipboard API (plain http on another host) select the text so Ctrl+C copies it.
  input.focus();
  input.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  text(
    "copy-status",
    copied ? `${label} copied to the clipboard.` : `${label} selected: press Ctrl+C (⌘C on a Mac) to copy it.`,
  );
}

// ---- preview player -----------------------------------------------------------------------------

let player = null;
let playerStarting = false;

async function startPreview() {
  if (player || playerStarting) {
    return;
  }
  playerStarting = true;
  const video = document.getElementById("preview");
  try {
    const { attachPlayer } = await import("/static/js/player.js");
    video.hidden = false;
    document.getElementById("preview-slate").hidden = true;
    player = attachPlayer(video, root.dataset.hlsUrl, {
      onStatus(state, message) {
        text("preview-status", message || "");
        if (state === "playing") {
          text("preview-error", "");
        }
      },
      onError(message) {
        text("preview-error", message);
      },
    });
  } catch (error) {
    text("preview-error", `The preview player could not be loaded: ${error.message}`);
  } finally {
    playerStarting = false;
  }
}

function stopPreview(message) {
  if (player) {
    player.destroy();
    player = null;
  }
  const video = document.getElementById("preview");
  video.hidden = true;
  const slate = document.getElementById("preview-slate");
  slate.hidden = false;
  slate.textContent = message;
  text("preview-status", "");
}

// ---- live status and history --------------------------------------------------------------------

let status = root ? root.dataset.status : null;
let startedAt = null;

function showStatus(stream) {
  const badge = document.getElementById("live-badge");
  badge.textContent = stream.status;
  badge.classList.toggle("badge-live", stream.status === "LIVE");
  badge.classList.toggle("badge-offline", stream.status !== "LIVE");
  root.dataset.status = stream.status;
  startedAt = stream.status === "LIVE" && stream.started_at ? Date.parse(stream.started_at) : null;
  text("fact-viewers", String(stream.viewers ?? 0));
  const video = stream.media && stream.media.video;
  text("fact-video", video && video.width ? `${video.codec} ${video.width}×${video.height}` : "–");
  text("fact-bitrate", stream.bitrate_kbps ? `${stream.bitrate_kbps} kbit/s` : "–");
  tickUptime();
}

function tickUptime() {
  text("fact-uptime", startedAt === null ? "–" : formatUptime((Date.now() - startedAt) / 1000));
}

function statusSentence(value) {
  if (value === "LIVE") {
    return "Live now.";
  }
  if (value === "ENDED") {
    return "Offline: the last broadcast has ended.";
  }
  return "Offline: not broadcast yet.";
}

async function refreshSessions() {
  const response = await fetch(root.dataset.sessionsUrl, { credentials: "same-origin" });
  if (!response.ok) {
    return;
  }
  const { sessions } = await response.json();
  const rows = document.getElementById("session-rows");
  rows.replaceChildren(
    ...sessions.map((session) => {
      const row = document.createElement("tr");
      const started = document.createElement("time");
      started.dateTime = session.started_at;
      started.textContent = session.started_at;
      const cells = [
        started,
        session.duration,
        session.end_reason,
        session.media,
        `${session.avg_bitrate_kbps || "–"} / ${session.peak_bitrate_kbps || "–"}`,
        session.remote_addr,
      ];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.append(value);
        row.append(cell);
      }
      return row;
    }),
  );
  document.getElementById("no-sessions").hidden = sessions.length > 0;
}

async function poll() {
  try {
    const response = await fetch(root.dataset.apiUrl, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 404) {
      text("live-status", "This stream no longer exists.");
      stopPreview("This stream was deleted.");
      return;
    }
    if (!response.ok) {
      throw new Error(`the server answered ${response.status}`);
    }
    const stream = await response.json();
    showStatus(stream);
    if (stream.status !== status) {
      status = stream.status;
      refreshSessions().catch(() => {});
    }
    const sentence = statusSentence(status);
    // Only on change: rewriting the same words would make screen readers announce them again.
    if (document.getElementById("live-status").textContent.trim() !== sentence) {
      text("live-status", sentence);
    }
    if (status === "LIVE") {
      startPreview();
    } else if (player) {
      stopPreview("The broadcast has ended. The preview starts again when you go live.");
    }
  } catch (error) {
    text("live-status", `Live status unavailable (${error.message}); retrying.`);
  }
  window.setTimeout(poll, POLL_MS);
}

// ---- the stream list: keep each row's status badge current ----------------------------------------

const LIST_POLL_MS = 5000;

async function pollList(table) {
  try {
    const response = await fetch("/api/v1/streams", { credentials: "same-origin", cache: "no-store" });
    if (response.ok) {
      const { streams } = await response.json();
      const statuses = new Map(streams.map((stream) => [stream.slug, stream.status]));
      for (const row of table.querySelectorAll("tr[data-slug]")) {
        const value = statuses.get(row.dataset.slug);
        const badge = row.querySelector(".badge");
        if (value && badge.textContent !== value) {
          badge.textContent = value;
          badge.classList.toggle("badge-live", value === "LIVE");
          badge.classList.toggle("badge-offline", value !== "LIVE");
        }
      }
    }
  } catch {
    // Offline for a moment: the next round tries again; the badges keep their last known state.
  }
  window.setTimeout(() => pollList(table), LIST_POLL_MS);
}

if (root) {
  setupKey();
  poll();
  window.setInterval(tickUptime, 1000);
}

const streamTable = document.getElementById("studio-streams");
if (streamTable) {
  window.setTimeout(() => pollList(streamTable), LIST_POLL_MS);
}
