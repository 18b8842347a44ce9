// deepcast dashboard: polls /api/stats of every node of the setup and shows
// rates from the difference between polls, and the last minute of them as
// sparklines. window.deepcastNodes keeps the last figures (and the
// minute's history) for tests.
'use strict';

const prev = {};
const nodeHistory = {}; // per node URL: its last minute of polls
const historyLength = 60; // polls, one a second
window.deepcastNodes = {};

const fmtBytes = (n) => {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
};

// sparkline draws one series of a node's history (null where it had no
// value, e.g. no request to count hits of) as an SVG line, scaled to its
// own peak, or to max when given (a ratio's 1), with its label and last value.
function sparkline(points, key, label, fmt, max) {
  const vals = points.map((p) => p[key]);
  const known = vals.filter((v) => v !== null && Number.isFinite(v));
  const peak = max || Math.max(...known, 0) || 1;
  const x = (i) => (historyLength - points.length + i).toFixed(0);
  const y = (v) => (30 - (28 * Math.min(v, peak)) / peak).toFixed(1);
  // A gap where a value is missing, rather than a line drawn through it.
  const runs = [];
  let run = [];
  vals.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (run.length) runs.push(run);
      run = [];
      return;
    }
    run.push([x(i), y(v)]);
  });
  if (run.length) runs.push(run);
  const lines = runs.map((r) => (r.length === 1 ? `<circle cx="${r[0][0]}" cy="${r[0][1]}" r="0.8"></circle>` :
    `<polyline points="${r.map((p) => p.join(',')).join(' ')}"></polyline>`)).join('');
  const last = known.length ? fmt(known[known.length - 1]) : '–';
  const scale = max ? `0 to ${fmt(max)}` : `peak ${fmt(Math.max(...known, 0))}`;
  return `<div class="spark" data-series="${esc(key)}"><div class="spark-k">${esc(label)} <span class="muted">last minute, ${esc(scale)}</span><span class="spark-v">${esc(last)}</span></div>
    <svg viewBox="0 0 ${historyLength} 32" preserveAspectRatio="none" role="img" aria-label="${esc(label)} over the last minute">${lines}</svg></div>`;
}

const pct = (v) => `${(v * 100).toFixed(0)} %`;
const perSecond = (v) => v.toFixed(1);
const bytesPerSecond = (v) => `${fmtBytes(v)}/s`;

function card(node, s, rates, err, tag = 'down') {
  if (err) {
    return `<div class="panel node"><h3>${esc(node.name)} <span class="tag ${tag === 'down' ? 'down' : 'stale'}">${esc(tag)}</span></h3><div class="role">${esc(node.role)} · ${esc(node.url)}</div><p class="muted">${esc(err)}</p></div>`;
  }
  if (node.role === 'router') {
    const rows = (s.edges || []).map((e) => `<tr><th>${esc(e.name)}</th><td><span class="tag ${e.up ? 'hit' : 'down'}">${e.up ? 'up' : 'down'}</span> ${Number(e.load || 0).toFixed(1)} req/s</td></tr>`).join('');
    return `<div class="panel node"><h3>${esc(node.name)}</h3><div class="role">${esc(node.role)} · ${esc(node.url)}</div>
      <table><tr><th>strategy</th><td>${esc(s.strategy)}</td></tr>${rows}</table></div>`;
  }
  if (node.role === 'origin') {
    return `<div class="panel node"><h3>${esc(node.name)}</h3><div class="role">${esc(node.role)} · ${esc(node.url)}</div>
      <table>
        <tr><th>requests/s</th><td>${rates.rps.toFixed(1)}</td></tr>
        <tr><th>sent/s</th><td>${fmtBytes(rates.sent)}</td></tr>
        <tr><th>requests</th><td>${count(s.requests)}</td></tr>
        <tr><th>assets</th><td>${count(s.assets)}</td></tr>
        <tr><th>jobs running</th><td>${count(s.jobsRunning)}</td></tr>
        ${s.heldBack ? `<tr><th>held back</th><td><span class="tag down">${count(s.heldBack)}</span> live version cannot be served (see the origin's log)</td></tr>` : ''}
      </table>
      ${sparkline(rates.history, 'rps', 'requests/s', perSecond)}
      ${sparkline(rates.history, 'out', 'sent', bytesPerSecond)}</div>`;
  }
  const ratio = s.hitRatio || 0;
  const ups = (s.upstreams || []).map((u) => `<span class="tag ${u.healthy ? 'hit' : 'down'}">${esc(u.url.replace('http://', ''))}</span>`).join(' ');
  const tiers = ['memory', 'disk', 'upstream'].filter((t) => s.bytesServed && t in s.bytesServed)
    .map((t) => `<tr><th>${t} bytes/s</th><td>${fmtBytes(rates.tiers[t] || 0)}</td></tr>`).join('');
  const viewers = viewerSummary(s.viewers);
  const objects = Object.entries(s.objects || {}).map(([t, n]) => `${esc(n)} in ${esc(t)} (${fmtBytes((s.cachedBytes || {})[t] || 0)})`).join(', ');
  return `<div class="panel node"><h3>${esc(node.name)}</h3><div class="role">${esc(node.role)} · ${esc(node.url)}</div>
    <div class="bar"><div style="width:${(ratio * 100).toFixed(1)}%"></div></div>
    <table>
      <tr><th>hit ratio</th><td>${(ratio * 100).toFixed(1)} %</td></tr>
      <tr><th>requests/s</th><td>${rates.rps.toFixed(1)}</td></tr>
      ${tiers}
      <tr><th>hits · misses · stale</th><td>${count(s.hits)} · ${count(s.misses)} · ${count(s.stale)}</td></tr>
      <tr><th>coalesced waits</th><td>${count(s.coalesced)}</td></tr>
      <tr><th>prefetches</th><td>${count(s.prefetches)}</td></tr>
      <tr><th>upstream errors · bad bodies</th><td>${count(s.errors)} · ${count(s.digestMismatches)}</td></tr>
      <tr><th>objects</th><td>${objects}</td></tr>
      <tr><th>upstreams</th><td>${ups}</td></tr>
      <tr><th>viewers (CMCD)</th><td class="viewers">${viewers}</td></tr>
      ${s.advice && s.advice.header ? `<tr><th>tells players (CMSD)</th><td class="advice">${adviceSummary(s.advice)}</td></tr>` : ''}
    </table>
    ${sparkline(rates.history, 'rps', 'requests/s', perSecond)}
    ${sparkline(rates.history, 'hit', 'hit ratio', pct, 1)}
    ${sparkline(rates.history, 'out', 'served', bytesPerSecond)}
    ${sparkline(rates.history, 'viewers', 'viewers', count)}</div>`;
}

// viewerSummary says what the players this edge serves report of
// themselves (CMCD, CTA-5004) over the last minute: how many sessions,
// how many stalled, their buffers and mean bitrate.
function viewerSummary(v) {
  if (!v || !v.sessions) return '<span class="muted">none reporting in the last minute</span>';
  const parts = [`${count(v.sessions)} session${v.sessions === 1 ? '' : 's'}`];
  if (v.live) parts.push(`${count(v.live)} live`);
  parts.push(v.starved ? `<span class="tag down">${count(v.starved)} stalled</span>` : '0 stalled');
  if (v.bufferMedianSeconds >= 0) parts.push(`buffer median ${v.bufferMedianSeconds.toFixed(1)} s, lowest ${v.bufferMinSeconds.toFixed(1)} s`);
  if (v.bitrateMeanKbps >= 0) parts.push(`mean ${(v.bitrateMeanKbps / 1000).toFixed(2)} Mbit/s`);
  return parts.join(' · ');
}

// adviceSummary says what the edge tells its players in CMSD-Dynamic
// (CTA-5006): the bitrate it suggests, whether it says it is under
// duress, and whether that bitrate is a fair share of its egress limit.
function adviceSummary(a) {
  const parts = [];
  if (a.maxBitrateKbps > 0) parts.push(`at most ${(a.maxBitrateKbps / 1000).toFixed(2)} Mbit/s`);
  // Its parent's suggestion, when that is what holds it down.
  if (a.parentMaxBitrateKbps > 0 && a.parentMaxBitrateKbps <= a.maxBitrateKbps) parts.push('as its parent suggests');
  if (a.capping) {
    let share = `a fair share of its egress for ${count(a.sessions)} session${a.sessions === 1 ? '' : 's'}`;
    // The rest, whose ladder the node does not know, get equal parts.
    if (a.byLadder > 0) share += `, ${count(a.byLadder)} of them each its own rung`;
    parts.push(share);
  }
  if (a.duress) parts.push('<span class="tag down">duress</span>');
  if (a.egressBitsPerSecond > 0) parts.push(`egress ${fmtBytes(a.egressBitsPerSecond / 8)}/s`);
  return parts.join(' · ');
}

// remember adds this poll's rates to the node's last minute: requests/s,
// bytes/s out (sent by an origin, served from every tier by an edge) and,
// for an edge, the share of this second's lookups that were hits (null
// when there were none, so an idle second is not a 0 % second).
function remember(url, p, s, rates) {
  const h = nodeHistory[url] || (nodeHistory[url] = []);
  if (!p) return h;
  let out = rates.sent;
  if (s.bytesServed) out = Object.values(rates.tiers).reduce((a, b) => a + b, 0);
  let hit = null;
  if ('hits' in s) {
    const hits = (s.hits || 0) - (p.s.hits || 0);
    const looked = hits + (s.misses || 0) - (p.s.misses || 0) + (s.stale || 0) - (p.s.stale || 0);
    if (looked > 0) hit = Math.max(0, Math.min(1, hits / looked));
  }
  const viewers = s.viewers ? s.viewers.sessions : null;
  h.push({ rps: rates.rps, out, hit, viewers });
  if (h.length > historyLength) h.splice(0, h.length - historyLength);
  return h;
}

async function poll(nodes) {
  const now = performance.now() / 1000;
  const cards = await Promise.all(nodes.map(async (n) => {
    let resp;
    try {
      resp = await fetch(`${n.url}/api/stats`, { cache: 'no-store' });
    } catch (e) {
      window.deepcastNodes[n.name] = { role: n.role, down: true };
      // fetch does not say why; over HTTPS an untrusted certificate (the
      // demo's own CA) looks the same as a dead node.
      const why = n.url.startsWith('https:') ? 'unreachable: down, or its certificate is not trusted by this browser' : 'unreachable';
      return card(n, null, null, why);
    }
    if (!resp.ok) {
      // Up, but its stats are for operators (-metrics-token, -admin-listen).
      window.deepcastNodes[n.name] = { role: n.role, private: true };
      return card(n, null, null, `up; its stats are not public here (HTTP ${resp.status})`, 'private');
    }
    try {
      const s = await resp.json();
      const p = prev[n.url];
      const dt = p ? now - p.t : 0;
      const rate = (a, b) => (dt > 0 ? Math.max(0, (a - b) / dt) : 0);
      const rates = { rps: p ? rate(s.requests, p.s.requests) : 0, sent: p ? rate(s.bytesSent || 0, p.s.bytesSent || 0) : 0, tiers: {} };
      for (const t of Object.keys(s.bytesServed || {})) rates.tiers[t] = p ? rate(s.bytesServed[t], p.s.bytesServed[t]) : 0;
      rates.history = remember(n.url, p, s, rates);
      prev[n.url] = { t: now, s };
      window.deepcastNodes[n.name] = Object.assign({ role: n.role }, s, { rates });
      return card(n, s, rates);
    } catch (e) {
      window.deepcastNodes[n.name] = { role: n.role, down: true };
      return card(n, null, null, `unreadable stats: ${e.message || e}`);
    }
  }));
  document.getElementById('nodes').innerHTML = cards.join('');
}

(async () => {
  const cfg = await (await fetch('/config.json')).json();
  const nodes = cfg.nodes && cfg.nodes.length ? cfg.nodes : [{ name: cfg.self || 'this node', role: '', url: location.origin }];
  await poll(nodes);
  setInterval(() => poll(nodes), 1000);
})();
