/// <reference lib="dom" />
/**
 * The explorer's keyboard: arrows move the query, `[` and `]` change layer,
 * Escape clears. While focus is inside the explorer no key event reaches
 * the page around it (Jupyter's command mode binds the same keys on the
 * document), except Tab, so focus can still leave.
 *
 * @module
 */

/** What the keys do; each returns nothing and redraws itself. */
export interface KeyActions {
  /** Move the query by `delta` positions (arrows: left/up -1, right/down +1). */
  moveQuery(delta: number): void;
  /** Move to the previous (-1) or next (+1) layer. */
  stepLayer(delta: number): void;
  /** Clear pins and hover. */
  clear(): void;
}

const MOVES: Record<string, number> = {
  ArrowLeft: -1,
  ArrowUp: -1,
  ArrowRight: 1,
  ArrowDown: 1,
};

/** Binds the keys on `root` (which must be focusable). */
export function bindKeys(root: HTMLElement, actions: KeyActions): void {
  root.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab") return;
    ev.stopPropagation();
    const typing = (ev.target as HTMLElement).closest?.("input, select");
    if (typing) return; // number inputs and selects keep their own keys
    if (ev.key in MOVES) actions.moveQuery(MOVES[ev.key]);
    else if (ev.key === "[") actions.stepLayer(-1);
    else if (ev.key === "]") actions.stepLayer(1);
    else if (ev.key === "Escape") actions.clear();
    else return;
    ev.preventDefault();
  });
  for (const type of ["keypress", "keyup"] as const) {
    root.addEventListener(type, (ev) => {
      if ((ev as KeyboardEvent).key !== "Tab") ev.stopPropagation();
    });
  }
}
