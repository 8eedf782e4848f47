/* Focus that survives redraws. A busy button is marked aria-disabled instead of disabled (a
   disabled button drops the focus to the page's body in Chromium); a control about to vanish
   hands focus to a nearby element first. */

/* Mark a button busy (its label says why) or ready again; focus stays on it either way. */
export function setBusy(button, busy, busyLabel = "") {
  if (busy) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.setAttribute("aria-disabled", "true");
    if (busyLabel) button.textContent = busyLabel;
    button.dataset.busyLabel = button.textContent;
  } else {
    button.removeAttribute("aria-disabled");
    // The label comes back unless something renamed the button meanwhile.
    if (button.dataset.label && button.textContent === button.dataset.busyLabel) button.textContent = button.dataset.label;
    delete button.dataset.label;
    delete button.dataset.busyLabel;
  }
}

export function isBusy(button) { return button.getAttribute("aria-disabled") === "true"; }

/* When focus is inside `leaving` (about to be removed or hidden), move it to `fallback`. */
export function handOff(leaving, fallback) {
  if (!leaving || !fallback || !leaving.contains(document.activeElement)) return;
  if (!fallback.hasAttribute("tabindex") && fallback.tabIndex < 0) fallback.setAttribute("tabindex", "-1");
  fallback.focus();
}

/* Run `move` (which takes `node` out of the document and back, e.g. to reorder it), keeping
   the focus and the caret that were inside it. */
export function keepFocus(node, move) {
  const active = node.contains(document.activeElement) ? document.activeElement : null;
  const caret = active && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
  move();
  if (!active || document.activeElement === active) return;
  active.focus({ preventScroll: true });
  if (caret) active.setSelectionRange(...caret);
}
