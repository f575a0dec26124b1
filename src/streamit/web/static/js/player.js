/**
 * Streamit's live HLS player, shared by the watch page and the studio preview.
 *
 *   import { attachPlayer } from "/static/js/player.js";
 *
 *   const player = attachPlayer(videoElement, "/hls/my-show/index.m3u8", {
 *     onStatus(state, message) { statusRegion.textContent = message; },
 *     onError(message, { fatal }) { errorRegion.textContent = message; },
 *   });
 *   // later, e.g. when the stream ends or the element goes away:
 *   player.destroy();
 *
 * attachPlayer(video, hlsUrl, { onStatus, onError, lowLatencyUrl }) returns { destroy(), engine } at once and
 * starts in the background:
 * - waits until the playlist has a segment (a stream that just went live has none yet; hls.js does not
 *   retry a 404 playlist), reporting state "starting";
 * - loads /static/vendor/hls.min.js once (served from node_modules; see streamit.web.vendor) and uses
 *   hls.js when Hls.isSupported(), else the browser's native HLS when it can play
 *   application/vnd.apple.mpegurl, else reports that this browser cannot play the stream;
 * - on network loss retries with backoff (1 s, 2 s … 30 s) until destroy(): hls.startLoad() after segment or
 *   playlist-refresh errors, a fresh hls.js instance after playlist errors; media errors go through
 *   hls.recoverMediaError(), then swapAudioCodec(), then a fresh instance;
 * - if autoplay with sound is refused, plays muted and says so;
 * - with lowLatencyUrl (the stream's LL-HLS playlist, ll.m3u8) and hls.js, plays that one with
 *   lowLatencyMode (blocking playlist reload, parts) when it is ready; native HLS and a missing LL playlist
 *   play hlsUrl.  video.dataset.playerSource says which: "ll-hls" | "hls".
 *
 * onStatus(state, message): state is "starting" | "loading" | "playing" | "buffering" | "recovering" |
 *   "muted" | "ended"; message is a sentence for a polite aria-live region ("" for "playing").  "playing" means
 *   media flows (again) and any earlier error is over: clear the error region.
 * onError(message, { fatal }): a sentence for an assertive aria-live region.  fatal is true when playback
 *   stopped (the player is already retrying, or — for a browser without HLS — cannot play at all).
 *
 * The <video> element carries data-player-engine ("hls.js" | "native" | "none") and, after a fatal error,
 * data-last-fatal-error (its message), so that tests and debugging can see what happened.
 */

import { backoffDelay } from "./format.js";

const HLS_SCRIPT = "/static/vendor/hls.min.js";
const HLS_MIME = "application/vnd.apple.mpegurl";
const PLAYLIST_POLL_MS = 1000;
// Two media errors this close together mean recoverMediaError() alone did not help.
const MEDIA_RECOVERY_WINDOW_MS = 3000;

let hlsLoad = null;

/** Resolves to the hls.js constructor, or null when /static/vendor/hls.min.js is not installed. */
export function loadHls() {
  if (window.Hls) {
    return Promise.resolve(window.Hls);
  }
  // Pages say when the server has no hls.js (base.html), which spares a failing script load.
  if (document.documentElement.dataset.hlsJs === "missing") {
    return Promise.resolve(null);
  }
  if (hlsLoad === null) {
    hlsLoad = new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = HLS_SCRIPT;
      script.async = true;
      script.addEventListener("load", () => resolve(window.Hls || null));
      script.addEventListener("error", () => resolve(null));
      document.head.append(script);
    });
  }
  return hlsLoad;
}

/** Whether the playlist at `url` exists and lists at least one segment (or variant). */
async function playlistReady(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) {
    return false;
  }
  const text = await response.text();
  // An ENDLIST playlist is what the previous broadcast left until the new one writes its first segment.
  const media = text.includes("#EXTINF") || text.includes("#EXT-X-PART:") || text.includes("#EXT-X-STREAM-INF");
  return media && !text.includes("#EXT-X-ENDLIST");
}

const NETWORK_WORDS = {
  manifestLoadError: "the playlist could not be loaded",
  manifestLoadTimeOut: "loading the playlist timed out",
  manifestParsingError: "the playlist could not be read",
  levelLoadError: "the playlist could not be refreshed",
  levelLoadTimeOut: "refreshing the playlist timed out",
  fragLoadError: "a video segment could not be loaded",
  fragLoadTimeOut: "loading a video segment timed out",
};

const MEDIA_ERROR_WORDS = {
  1: "playback was aborted",
  2: "a network error stopped the download",
  3: "the video could not be decoded",
  4: "the stream's format is not supported by this browser",
};

function describeHlsError(data) {
  const words = NETWORK_WORDS[data.details] || `${data.type}: ${data.details}`;
  const code = data.response && data.response.code;
  return code ? `${words} (HTTP ${code})` : words;
}

function seconds(ms) {
  return `${Math.round(ms / 1000)} s`;
}

/** Play `hlsUrl` in `video`; see the module comment for the callbacks and the returned handle. */
export function attachPlayer(video, hlsUrl, { onStatus = () => {}, onError = () => {}, lowLatencyUrl = null } = {}) {
  let destroyed = false;
  let sourceUrl = hlsUrl;
  let hls = null;
  let Hls = null;
  let timer = null;
  let attempt = 0;
  let lastMediaRecovery = -Infinity;
  let swappedAudioCodec = false;
  // Set by a fatal error, cleared when media flows again (the video may never have stopped if its buffer
  // outlasted the outage, so "playing" alone would leave a stale error on screen).
  let troubled = false;
  const removers = [];
  const handle = {
    engine: null,
    destroy,
  };

  function listen(target, type, listener) {
    target.addEventListener(type, listener);
    removers.push(() => target.removeEventListener(type, listener));
  }

  function later(action, delayMs) {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (!destroyed) {
        action();
      }
    }, delayMs);
  }

  function nextDelay() {
    const delay = backoffDelay(attempt);
    attempt += 1;
    return delay;
  }

  function fatal(message) {
    troubled = true;
    video.dataset.lastFatalError = message;
    onError(message, { fatal: true });
  }

  function setEngine(engine) {
    handle.engine = engine;
    video.dataset.playerEngine = engine;
  }

  async function play() {
    try {
      await video.play();
    } catch (error) {
      if (destroyed || error.name === "AbortError") {
        return;
      }
      if (error.name === "NotAllowedError" && !video.muted) {
        video.muted = true;
        try {
          await video.play();
          onStatus("muted", "Playing without sound: the browser blocks sound until you interact. Use the volume control to unmute.");
        } catch (mutedError) {
          onError(`The browser did not start playback (${mutedError.message}). Press play to start.`, { fatal: false });
        }
        return;
      }
      onError(`Playback could not start (${error.message}). Press play to try again.`, { fatal: false });
    }
  }

  function recovered() {
    attempt = 0;
    troubled = false;
    onStatus("playing", "");
  }

  listen(video, "playing", recovered);
  listen(video, "waiting", () => onStatus("buffering", "Buffering…"));
  listen(video, "ended", () => onStatus("ended", "The stream has ended."));

  function destroyHls() {
    if (hls !== null) {
      hls.destroy();
      hls = null;
    }
  }

  function rebuild(delayMs) {
    destroyHls();
    later(startHls, delayMs);
  }

  function onHlsError(_event, data) {
    if (!data.fatal) {
      // hls.js retries these itself; a stall is worth telling the viewer about, the rest is noise.
      if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) {
        onStatus("buffering", "Buffering…");
      }
      return;
    }
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      const delay = nextDelay();
      fatal(`Network problem: ${describeHlsError(data)}. Retrying in ${seconds(delay)}.`);
      onStatus("recovering", "Reconnecting to the stream…");
      const playlistGone = data.details.startsWith("manifest");
      if (playlistGone) {
        rebuild(delay);
      } else {
        later(() => hls.startLoad(), delay);
      }
      return;
    }
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      const now = performance.now();
      const repeated = now - lastMediaRecovery < MEDIA_RECOVERY_WINDOW_MS;
      lastMediaRecovery = now;
      fatal(`The video could not be decoded (${data.details}); recovering.`);
      onStatus("recovering", "Recovering playback…");
      if (!repeated) {
        hls.recoverMediaError();
      } else if (!swappedAudioCodec) {
        swappedAudioCodec = true;
        hls.swapAudioCodec();
        hls.recoverMediaError();
      } else {
        swappedAudioCodec = false;
        rebuild(nextDelay());
      }
      return;
    }
    const delay = nextDelay();
    fatal(`The player stopped (${data.type}: ${data.details}). Restarting in ${seconds(delay)}.`);
    onStatus("recovering", "Restarting the player…");
    rebuild(delay);
  }

  function startHls() {
    const lowLatency = sourceUrl !== hlsUrl;
    hls = new Hls({ backBufferLength: 30, lowLatencyMode: lowLatency });
    hls.on(Hls.Events.ERROR, onHlsError);
    hls.on(Hls.Events.MANIFEST_PARSED, () => play());
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      if (troubled) {
        recovered();
      } else {
        attempt = 0;
      }
    });
    hls.loadSource(sourceUrl);
    hls.attachMedia(video);
  }

  function startNative() {
    listen(video, "loadedmetadata", () => play());
    listen(video, "error", () => {
      if (destroyed || !video.error) {
        return;
      }
      const delay = nextDelay();
      const words = MEDIA_ERROR_WORDS[video.error.code] || "playback failed";
      fatal(`Playback stopped: ${words}. Retrying in ${seconds(delay)}.`);
      onStatus("recovering", "Reconnecting to the stream…");
      later(() => {
        video.src = hlsUrl;
        video.load();
      }, delay);
    });
    video.src = hlsUrl;
    video.load();
  }

  async function waitForPlaylist() {
    onStatus("starting", "Waiting for the first video segment…");
    for (;;) {
      if (destroyed) {
        return false;
      }
      try {
        if (await playlistReady(hlsUrl)) {
          return true;
        }
      } catch (error) {
        onError(`Could not reach the stream (${error.message}); still trying.`, { fatal: false });
      }
      await new Promise((resolve) => setTimeout(resolve, PLAYLIST_POLL_MS));
    }
  }

  async function start() {
    const [library, ready] = await Promise.all([loadHls(), waitForPlaylist()]);
    if (destroyed || !ready) {
      return;
    }
    onStatus("loading", "Loading the stream…");
    if (library && library.isSupported()) {
      Hls = library;
      setEngine("hls.js");
      if (lowLatencyUrl && (await playlistReady(lowLatencyUrl).catch(() => false))) {
        sourceUrl = lowLatencyUrl;
      }
      video.dataset.playerSource = sourceUrl === hlsUrl ? "hls" : "ll-hls";
      startHls();
    } else if (video.canPlayType(HLS_MIME)) {
      setEngine("native");
      startNative();
    } else {
      setEngine("none");
      fatal(
        library
          ? "This browser cannot play HLS video: it has neither Media Source Extensions nor native HLS."
          : "The player library (hls.js) is not installed on this server and this browser has no native HLS; the operator can install it with `npm ci`.",
      );
    }
  }

  function destroy() {
    if (destroyed) {
      return;
    }
    destroyed = true;
    clearTimeout(timer);
    destroyHls();
    for (const remove of removers.splice(0)) {
      remove();
    }
    video.pause();
    video.removeAttribute("src");
    video.load();
    delete video.dataset.playerEngine;
    delete video.dataset.playerSource;
  }

  start().catch((error) => {
    if (!destroyed) {
      fatal(`The player failed to start (${error.message}).`);
    }
  });
  return handle;
}
