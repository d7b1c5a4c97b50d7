// Small DOM and request helpers shared by the birth views (self-contained: no app.js imports).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Sentences for the stable error codes of the birth API (paise and codes never reach the screen).
const MESSAGES = {
  INVALID_DATE: "That date does not exist — please check the day and month.",
  DATE_OUT_OF_RANGE: "Dates of birth from 1 January 1900 up to today are supported.",
  INVALID_TIME: "Please give the time as hours and minutes, e.g. 14:35.",
  TIME_DOES_NOT_EXIST: "The clocks skipped that time at that place (a time change). Please check it.",
  UNKNOWN_PLACE: "Please pick a place from the list, or type its coordinates.",
  COORDINATES_OUT_OF_RANGE: "Latitude must be within ±90° and longitude within ±180°.",
  TOO_MANY_PROFILES: "You have the most birth profiles allowed; delete one first.",
  BIRTH_PROFILE_NOT_FOUND: "That birth profile no longer exists.",
  FORBIDDEN: "You may not see these birth details.",
  RATE_LIMITED: "Too many requests — please wait a moment.",
  VALIDATION_FAILED: "Please fill in the name and gender.",
};

export function sentence(error) {
  return MESSAGES[error.code] || error.message || String(error);
}

// The chart picture is personal data behind a bearer token: fetch it, show it as an <img>
// (an SVG in an <img> runs no script), and free the object URL when the image is replaced.
export async function chartImage(api, profileId, style) {
  const response = await fetch(`/birth-profiles/${profileId}/chart.svg?style=${style}`, {
    headers: { Authorization: "Bearer " + api.token },
  });
  if (!response.ok) throw Object.assign(new Error("chart unavailable"), { code: "HTTP_" + response.status });
  const url = URL.createObjectURL(await response.blob());
  const img = el("img", { class: "chart-svg", src: url, alt: `${style} Indian rashi chart`, "data-style": style });
  img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  return img;
}

export function describeBirth(profile) {
  const time = profile.time_known ? profile.time.slice(0, 5) : "time unknown";
  const lmt = profile.local_mean_time ? " local mean time" : "";
  return `${profile.date} · ${time} (UTC${profile.utc_offset}${lmt}) · ${profile.place.name}`;
}
