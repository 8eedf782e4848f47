/* The portal's JSON API: fetch with the session's CSRF token; errors carry status and kind. */

let csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
let whenLoggedOut = () => {};

/* A refusal of the portal: its sentence, HTTP status and error class name. */
export class ApiError extends Error {
  constructor(message, status, kind) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

/* A new session (login, logout) comes with a new CSRF token. */
export function setCsrf(token) { if (token) csrf = token; }

/* What to do when the portal says this session is no longer logged in (401). */
export function onLoggedOut(handler) { whenLoggedOut = handler; }

const NO_LOGIN_NEEDED = ["/api/login", "/api/login/message", "/api/register", "/api/logout"];

export async function api(method, url, body) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) {
    if (response.status === 401 && !NO_LOGIN_NEEDED.includes(url)) whenLoggedOut();
    throw new ApiError(data.error || `request failed (${response.status})`, response.status, data.kind);
  }
  return data;
}
