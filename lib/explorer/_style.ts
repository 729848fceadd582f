/**
 * The explorer's styles, every rule under `.attnscope-explorer` so that
 * several explorers (and the notebook around them) are left alone.
 *
 * @module
 */

import { MARK_COLOR, TOKEN_TYPE_COLORS } from "../charts/_tokens.ts";

/** The `<style>` body shared by every explorer. */
export const EXPLORER_CSS = `
.attnscope-explorer{font-family:system-ui,sans-serif;font-size:13px;color:#111;background:white;max-width:1180px;outline:none}
.attnscope-explorer .ax-bar{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:4px 0}
.attnscope-explorer .ax-chip{min-width:26px;padding:1px 4px;border:1px solid hsl(var(--hue),45%,45%);background:white;border-radius:10px;cursor:pointer;font-size:12px}
.attnscope-explorer .ax-chip[aria-pressed=true]{background:hsl(var(--hue),55%,82%)}
.attnscope-explorer .ax-filters input[type=number]{width:56px}
.attnscope-explorer .ax-note{color:#8a4b00;font-size:12px;margin:2px 0}
.attnscope-explorer .ax-main{display:flex;gap:14px;align-items:flex-start;flex-wrap:wrap}
.attnscope-explorer .ax-canvas-wrap{position:relative;width:520px}
.attnscope-explorer .ax-matrix{display:block;border:1px solid #999;cursor:crosshair;image-rendering:pixelated}
.attnscope-explorer .ax-tip{position:absolute;pointer-events:none;background:rgba(20,20,20,.88);color:white;padding:2px 6px;border-radius:3px;font-size:12px;white-space:nowrap;z-index:2}
.attnscope-explorer .ax-band{position:absolute;pointer-events:none;border:1px dashed ${MARK_COLOR};background:rgba(224,17,95,.08)}
.attnscope-explorer [hidden]{display:none!important}
.attnscope-explorer .ax-text{flex:1;min-width:300px;max-height:560px;overflow:auto;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;white-space:pre-wrap;word-break:break-word;padding:6px;border:1px solid #ddd}
.attnscope-explorer .ax-tok{cursor:pointer;border-radius:2px}
.attnscope-explorer .ax-t-g{box-shadow:inset 0 -2px 0 ${TOKEN_TYPE_COLORS.generated}}
.attnscope-explorer .ax-image{display:inline-flex;flex-wrap:wrap;max-width:180px;border:2px solid ${TOKEN_TYPE_COLORS.vision};padding:1px;vertical-align:middle}
.attnscope-explorer .ax-image .ax-tok{display:inline-block;width:9px;height:9px;line-height:9px;font-size:6px;border:1px solid #f6d2b0}
.attnscope-explorer .ax-sel{outline:2px solid #111;outline-offset:-1px}
.attnscope-explorer .ax-pin{outline:2px solid ${MARK_COLOR}}
.attnscope-explorer .ax-key{padding:0 4px}
.attnscope-explorer .ax-key.ax-t-l{border-left:8px solid ${TOKEN_TYPE_COLORS.language}}
.attnscope-explorer .ax-key.ax-t-v{border-left:8px solid ${TOKEN_TYPE_COLORS.vision}}
.attnscope-explorer .ax-key.ax-t-g{border-left:8px solid ${TOKEN_TYPE_COLORS.generated}}
.attnscope-explorer .ax-legend,.attnscope-explorer .ax-status,.attnscope-explorer .ax-sub{color:#555;font-size:12px;margin:4px 0}
.attnscope-explorer .ax-thumb-grid{display:grid;gap:2px;align-items:center;font-size:10px;color:#555}
.attnscope-explorer .ax-thumb{width:44px;height:44px;cursor:pointer;border:1px solid #ccc;image-rendering:pixelated}
.attnscope-explorer .ax-thumb.ax-on{border-color:${MARK_COLOR}}
`.trim();
