// Preact + htm as one import for every view: html`<div>…</div>` templates, no build step.
import { h, render } from "/client/vendor/preact.mjs";
import htm from "/client/vendor/htm.mjs";

export const html = htm.bind(h);
export { render };
export { useEffect, useMemo, useReducer, useRef, useState, useCallback } from "/client/vendor/preact-hooks.mjs";
