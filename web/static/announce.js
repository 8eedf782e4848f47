/* What others and the server change, said once and shown without moving focus.

Two live regions, both visually hidden: a polite log for news, an assertive one only for what
needs the person to act (being outbid, a failure). Each message is a new line appended to its
region, so a screen reader reads it once and never re-reads the rest. The status bar below the
views (not a live region, so nothing is read twice) shows the latest message until the person
dismisses it or a newer one replaces it: nothing vanishes before it can be read. */

const KEPT = 50;  // lines a region keeps (older ones are dropped, already read)

function region(urgent) { return document.getElementById(urgent ? "announce-urgent" : "announce"); }

/* Say `text` once in the live region; `show` also puts it in the status bar. */
export function announce(text, { urgent = false, show = false, error = false } = {}) {
  if (!text) return;
  const box = region(urgent);
  if (box) {
    const line = document.createElement("p");
    line.textContent = text;
    box.append(line);
    while (box.childElementCount > KEPT) box.firstElementChild.remove();
  }
  if (show) showStatus(text, error);
}

/* The status bar: the latest message stays until dismissed or replaced. */
function showStatus(text, error) {
  const bar = document.getElementById("toast");
  if (!bar) return;
  bar.querySelector(".toast-text").textContent = text;
  bar.classList.toggle("error", error);
  bar.hidden = false;
}

/* A message about one's own action: shown in the status bar and said (a failure assertively). */
export function toast(message, isError = false) {
  announce(message, { urgent: isError, show: true, error: isError });
}

/* Empty both regions and the bar (logging out: the next person must not hear the last one's news). */
export function clearAnnouncements() {
  for (const urgent of [false, true]) { const box = region(urgent); if (box) box.replaceChildren(); }
  const bar = document.getElementById("toast");
  if (bar) bar.hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  const dismiss = document.querySelector("#toast .toast-dismiss");
  if (!dismiss) return;
  dismiss.addEventListener("click", () => {
    // Focus was on the bar's own button: hand it back to the view's heading, not to the body.
    const heading = document.querySelector(".view:not([hidden]) h1");
    document.getElementById("toast").hidden = true;
    if (heading) heading.focus();
  });
});
