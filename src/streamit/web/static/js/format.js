// Formatting shared by the public pages; the server renders the same strings (streamit.web.public).

/** "M:SS" under an hour, else "H:MM:SS" (negative durations count as 0). */
export function formatUptime(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  if (hours > 0) {
    return `${hours}:${String(minutes).padStart(2, "0")}:${secs}`;
  }
  return `${minutes}:${secs}`;
}

/** Seconds between an ISO 8601 timestamp and now; null when there is no timestamp. */
export function secondsSince(iso) {
  if (!iso) {
    return null;
  }
  const started = Date.parse(iso);
  return Number.isNaN(started) ? null : (Date.now() - started) / 1000;
}

/** "640×360" from the API's media.video, or null when the size is not known yet. */
export function formatResolution(media) {
  const video = media && media.video;
  if (!video || !video.width || !video.height) {
    return null;
  }
  return `${video.width}×${video.height}`;
}

/** Delay before retry number `attempt` (0-based): 1 s, 2 s, 4 s … capped at `maxMs`. */
export function backoffDelay(attempt, maxMs = 30000) {
  return Math.min(maxMs, 1000 * 2 ** Math.min(attempt, 16));
}
