// The live directory: polls GET /api/v1/streams?status=LIVE every few seconds and updates the grid in place.
// Cards are built with the DOM API (textContent), never from HTML strings: titles are user input.

import { backoffDelay, formatResolution, formatUptime, secondsSince } from "./format.js";

const POLL_MS = 5000;

const grid = document.getElementById("stream-grid");
const empty = document.getElementById("directory-empty");
const status = document.getElementById("directory-status");
let failures = 0;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function fact(label, valueNode) {
  const wrap = element("div");
  const dd = element("dd");
  dd.append(valueNode);
  wrap.append(element("dt", "", label), dd);
  return wrap;
}

// The same markup as templates/_stream_card.html.
function createCard(slug) {
  const card = element("li", "stream-card");
  card.dataset.slug = slug;
  const link = element("a", "stream-link");
  link.href = `/watch/${encodeURIComponent(slug)}`;
  const thumbnail = element("div", "thumbnail");
  thumbnail.setAttribute("aria-hidden", "true");
  thumbnail.append(element("span", "badge badge-live", "LIVE"), element("span", "thumbnail-resolution"));
  link.append(thumbnail, element("h2", "stream-title"));
  const facts = element("dl", "stream-facts");
  facts.append(
    fact("Live for", element("time", "uptime", "—")),
    fact("Viewers", element("span", "viewers", "0")),
    fact("Resolution", element("span", "resolution", "unknown")),
  );
  card.append(link, facts);
  return card;
}

function fill(card, stream) {
  const resolution = formatResolution(stream.media);
  card.querySelector(".stream-title").textContent = stream.title;
  card.querySelector(".thumbnail-resolution").textContent = resolution || "";
  const uptime = card.querySelector(".uptime");
  uptime.dateTime = stream.started_at || "";
  card.querySelector(".viewers").textContent = String(stream.viewers);
  card.querySelector(".resolution").textContent = resolution || "unknown";
  tick(uptime);
}

function tick(uptime) {
  const elapsed = secondsSince(uptime.dateTime);
  uptime.textContent = elapsed === null ? "—" : formatUptime(elapsed);
}

function render(streams) {
  const existing = new Map([...grid.querySelectorAll(".stream-card")].map((card) => [card.dataset.slug, card]));
  const cards = streams.map((stream) => {
    const card = existing.get(stream.slug) || createCard(stream.slug);
    existing.delete(stream.slug);
    fill(card, stream);
    return card;
  });
  for (const gone of existing.values()) {
    gone.remove();
  }
  // Re-appending in API order (newest first) moves existing nodes without recreating them (focus stays).
  cards.forEach((card, index) => {
    if (grid.children[index] !== card) {
      grid.insertBefore(card, grid.children[index] || null);
    }
  });
  grid.hidden = streams.length === 0;
  empty.hidden = streams.length !== 0;
}

async function poll() {
  let delay = POLL_MS;
  try {
    const response = await fetch("/api/v1/streams?status=LIVE", {
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      throw new Error(`the server answered ${response.status}`);
    }
    const body = await response.json();
    failures = 0;
    status.textContent = "";
    render(body.streams);
  } catch (error) {
    delay = Math.max(POLL_MS, backoffDelay(failures));
    failures += 1;
    status.textContent = `Could not refresh the list (${error.message}); retrying in ${Math.round(delay / 1000)} s.`;
  }
  setTimeout(poll, delay);
}

setInterval(() => grid.querySelectorAll(".uptime").forEach(tick), 1000);
setTimeout(poll, POLL_MS);
