// esc makes a value text inside HTML: what a stream or a node sends (a
// Cache-Status header, a rendition id, a name) is data, never markup.
// Loaded before the player page's and the dashboard's scripts.
'use strict';

const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
