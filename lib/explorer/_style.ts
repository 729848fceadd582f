/**
 * The explorer's styles, every rule under `.attnscope-explorer` so that
 * several explorers (and the notebook around them) are left alone.
 *
 * @module
 */

import { MARK_COLOR, TOKEN_TYPE_COLORS } from "../charts/_tokens.ts";

const LIGHT =
  "--ax-bg:#ffffff;--ax-fg:#1b1b1f;--ax-muted:#4f5360;--ax-border:#c9ccd4;--ax-ctl:#f3f4f7;--ax-ctl-on:#dfe6ff;--ax-accent:#2b55d6;--ax-masked:#ececef;--ax-note:#8a4b00;--ax-sel:#111";
const DARK =
  "--ax-bg:#1d1f24;--ax-fg:#e8e9ed;--ax-muted:#b4b8c4;--ax-border:#4a4e5a;--ax-ctl:#2a2d34;--ax-ctl-on:#33436e;--ax-accent:#8fb0ff;--ax-masked:#34363c;--ax-note:#f0b46a;--ax-sel:#fff";
const E = ".attnscope-explorer";

/** The `<style>` body shared by every explorer. */
export const EXPLORER_CSS = `
${E}{${LIGHT}}
${E}[data-theme=dark]{${DARK}}
@media (prefers-color-scheme:dark){${E}[data-theme=auto]{${DARK}}}
${E}{font-family:system-ui,sans-serif;font-size:13px;color:var(--ax-fg);background:var(--ax-bg);max-width:1180px;outline:none;padding:6px 8px;border-radius:6px;color-scheme:light}
${E}[data-theme=dark]{color-scheme:dark}
${E}[data-theme-host]{background:transparent;color:var(--jp-ui-font-color1,var(--vscode-editor-foreground,var(--ax-fg)))}
${E}:focus-visible{box-shadow:0 0 0 2px var(--ax-accent)}
${E} .ax-bar{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:4px 0}
${E} button,${E} select,${E} input{font:inherit;font-size:12px;color:var(--ax-fg);background:var(--ax-ctl);border:1px solid var(--ax-border);border-radius:5px;padding:2px 7px;height:24px;box-sizing:border-box}
${E} button{cursor:pointer}
${E} button:hover,${E} select:hover{border-color:var(--ax-accent)}
${E} input[type=checkbox]{height:auto;accent-color:var(--ax-accent)}
${E} .ax-chips{display:inline-flex;flex-wrap:wrap;gap:3px}
${E} .ax-kv{display:inline-flex;gap:2px;padding:1px 3px;border:1px dashed var(--ax-border);border-radius:7px}
${E} .ax-chip{min-width:26px;padding:1px 4px;border:1px solid hsl(var(--hue),45%,45%);border-radius:10px;font-size:12px}
${E} .ax-chip[aria-pressed=true]{background:var(--ax-ctl-on);box-shadow:inset 0 -3px 0 hsl(var(--hue),60%,55%)}
${E} .ax-filters input[type=number]{width:60px}
${E} .ax-note{color:var(--ax-note);font-size:12px;margin:2px 0}
${E} .ax-main{display:flex;gap:14px;align-items:flex-start;flex-wrap:wrap}
${E} .ax-canvas-wrap{position:relative;width:520px;margin:0 0 66px 66px}
${E} .ax-axis{position:absolute;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:10px;line-height:11px;color:var(--ax-muted);pointer-events:none}
${E} .ax-axis-q{left:-66px;top:0;width:62px}
${E} .ax-axis-q span{position:absolute;right:0;transform:translateY(-50%);white-space:pre;max-width:62px;overflow:hidden}
${E} .ax-axis-k{left:0;height:62px}
${E} .ax-axis-k span{position:absolute;top:0;writing-mode:vertical-rl;transform:translateX(-50%);white-space:pre;max-height:62px;overflow:hidden}
${E} .ax-ramp{display:flex;align-items:center;gap:2px;font-size:11px;color:var(--ax-muted);margin:0 0 8px 66px}
${E} .ax-ramp canvas{width:160px;height:10px;image-rendering:pixelated;border:1px solid var(--ax-border)}
${E} .ax-matrix{display:block;border:1px solid var(--ax-border);cursor:crosshair;image-rendering:pixelated}
${E} .ax-tip{position:absolute;pointer-events:none;background:rgba(20,20,20,.92);color:white;padding:2px 6px;border-radius:3px;font-size:12px;white-space:nowrap;z-index:2}
${E} .ax-band{position:absolute;pointer-events:none;border:1px dashed ${MARK_COLOR};background:rgba(224,17,95,.08)}
${E} [hidden]{display:none!important}
${E} .ax-text{flex:1;min-width:300px;max-height:560px;overflow:auto;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;white-space:pre-wrap;word-break:break-word;padding:6px;border:1px solid var(--ax-border);border-radius:4px}
${E} .ax-tok{cursor:pointer;border-radius:2px}
${E} .ax-t-g{box-shadow:inset 0 -2px 0 ${TOKEN_TYPE_COLORS.generated}}
${E} .ax-image{display:inline-flex;flex-wrap:wrap;max-width:180px;border:2px solid ${TOKEN_TYPE_COLORS.vision};padding:1px;vertical-align:middle}
${E} .ax-image .ax-tok{display:inline-block;width:9px;height:9px;line-height:9px;font-size:6px;border:1px solid #f6d2b0}
${E} .ax-sel{outline:2px solid var(--ax-sel);outline-offset:-1px}
${E} .ax-pin{outline:2px solid ${MARK_COLOR}}
${E} .ax-key{padding:0 4px}
${E} .ax-key.ax-t-l{border-left:8px solid ${TOKEN_TYPE_COLORS.language}}
${E} .ax-key.ax-t-v{border-left:8px solid ${TOKEN_TYPE_COLORS.vision}}
${E} .ax-key.ax-t-g{border-left:8px solid ${TOKEN_TYPE_COLORS.generated}}
${E} .ax-legend,${E} .ax-status,${E} .ax-sub{color:var(--ax-muted);font-size:12px;margin:4px 0}
${E} .ax-thumb-grid{display:grid;gap:2px;align-items:center;justify-content:start;font-size:10px;color:var(--ax-muted)}
${E} .ax-thumb{width:44px;height:44px;cursor:pointer;border:1px solid var(--ax-border);image-rendering:pixelated}
${E} .ax-thumb.ax-on{border-color:${MARK_COLOR}}
`.trim();
