// esc makes a value text inside HTML: what a stream or a node sends (a
// Cache-Status header, a rendition id, a name) is data, never markup.
// Loaded before the player page's and the dashboard's scripts.
'use strict';

const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

// count shows a figure a node reports: a finite number as it is, anything
// else (a node that sends a string where a count belongs) as a dash.
const count = (v) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : '–');
