// The watch page: polls GET /api/v1/streams/{slug} and switches between the offline slate, the player and the
// ended state without a reload.  The server renders the first state (streamit.web.public).

import { attachPlayer } from "./player.js";
import { backoffDelay, formatResolution, formatUptime, secondsSince } from "./format.js";

const POLL_LIVE_MS = 5000;
const POLL_WAITING_MS = 3000;
const STATES = { LIVE: "live", ENDED: "ended", DRAFT: "offline" };

const root = document.getElementById("watch");
const video = document.getElementById("video");
const view = {
  title: document.getElementById("stream-title"),
  slateOffline: document.getElementById("slate-offline"),
  slateEnded: document.getElementById("slate-ended"),
  status: document.getElementById("player-status"),
  error: document.getElementById("player-error"),
  liveBadge: document.getElementById("live-badge"),
  offlineBadge: document.getElementById("offline-badge"),
  uptimeWrap: document.getElementById("uptime-wrap"),
  uptime: document.getElementById("uptime"),
  viewersWrap: document.getElementById("viewers-wrap"),
  viewers: document.getElementById("viewers"),
  resolution: document.getElementById("resolution"),
  endedAtWrap: document.getElementById("ended-at-wrap"),
  endedAt: document.getElementById("ended-at"),
};

// One message per source, shown together: a player problem and lost contact with the API can overlap.
const errors = new Map();
if (root.dataset.hlsAvailable !== "true") {
  errors.set("library", view.error.textContent.trim());
}

let player = null;
let startedAt = root.dataset.startedAt || null;
let pollTimer = null;
let pollFailures = 0;
let polling = false;
let pollSoonRequested = false;

function showErrors() {
  const text = [...errors.values()].filter(Boolean).join(" ");
  // The region stays in the page (empty, invisible) so that screen readers announce what is put in it.
  view.error.textContent = text;
}

function setError(source, message) {
  if (message) {
    errors.set(source, message);
  } else {
    errors.delete(source);
  }
  showErrors();
}

function startPlayer() {
  player = attachPlayer(video, root.dataset.hlsUrl, {
    lowLatencyUrl: root.dataset.llhlsUrl || null,
    onStatus(state, message) {
      view.status.textContent = message;
      if (state === "playing") {
        setError("player", "");
      } else if (state === "ended") {
        pollSoon();
      }
    },
    onError(message, { fatal }) {
      setError("player", message);
      if (fatal) {
        // A fatal error often means the stream went away: ask the API instead of waiting for the next poll.
        pollSoon();
      }
    },
  });
}

function stopPlayer() {
  if (player !== null) {
    player.destroy();
    player = null;
  }
  view.status.textContent = "";
  setError("player", "");
}

function tickUptime() {
  const elapsed = secondsSince(startedAt);
  if (elapsed !== null && root.dataset.state === "live") {
    view.uptime.textContent = formatUptime(elapsed);
  }
}

function render(stream) {
  const state = STATES[stream.status] || "offline";
  const live = state === "live";
  root.dataset.status = stream.status;
  root.dataset.state = state;
  startedAt = stream.started_at;
  view.uptime.dateTime = stream.started_at || "";
  if (view.title.textContent !== stream.title) {
    view.title.textContent = stream.title;
    document.title = `${stream.title} · Streamit`;
  }
  video.hidden = !live;
  view.slateOffline.hidden = state !== "offline";
  view.slateEnded.hidden = state !== "ended";
  if (stream.ended_at && view.endedAt.dateTime !== stream.ended_at) {
    view.endedAt.dateTime = stream.ended_at;
    view.endedAt.textContent = new Date(stream.ended_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }
  view.endedAtWrap.hidden = !stream.ended_at;
  view.liveBadge.hidden = !live;
  view.offlineBadge.hidden = live;
  view.offlineBadge.textContent = state === "ended" ? "ENDED" : "OFFLINE";
  view.uptimeWrap.hidden = !live;
  view.viewersWrap.hidden = !live;
  view.viewers.textContent = String(stream.viewers);
  const resolution = formatResolution(stream.media);
  view.resolution.hidden = resolution === null;
  view.resolution.textContent = resolution || "";
  tickUptime();
  if (live && player === null) {
    startPlayer();
  } else if (!live && player !== null) {
    stopPlayer();
  }
}

async function poll() {
  pollTimer = null;
  polling = true;
  pollSoonRequested = false;
  let delay = root.dataset.state === "live" ? POLL_LIVE_MS : POLL_WAITING_MS;
  try {
    const response = await fetch(`/api/v1/streams/${encodeURIComponent(root.dataset.slug)}`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 404) {
      stopPlayer();
      setError("connection", "This stream no longer exists.");
      root.dataset.state = "gone";
      polling = false;
      return;
    }
    if (!response.ok) {
      throw new Error(`the server answered ${response.status}`);
    }
    const stream = await response.json();
    pollFailures = 0;
    setError("connection", "");
    render(stream);
  } catch (error) {
    delay = backoffDelay(pollFailures);
    pollFailures += 1;
    setError("connection", `Lost contact with the server (${error.message}); retrying in ${Math.round(delay / 1000)} s.`);
  }
  polling = false;
  schedulePoll(pollSoonRequested ? 250 : delay);
}

function schedulePoll(delay) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, delay);
}

function pollSoon() {
  if (polling) {
    pollSoonRequested = true;
  } else {
    schedulePoll(250);
  }
}

if (root.dataset.state === "live") {
  startPlayer();
}
showErrors();
setInterval(tickUptime, 1000);
schedulePoll(root.dataset.state === "live" ? POLL_LIVE_MS : POLL_WAITING_MS);
