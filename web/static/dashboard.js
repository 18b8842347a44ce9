// deepcast dashboard: polls /api/stats of every node of the setup and shows
// rates from the difference between polls. window.deepcastNodes keeps the
// last figures for tests.
'use strict';

const prev = {};
window.deepcastNodes = {};

const fmtBytes = (n) => {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
};

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
      </table></div>`;
  }
  const ratio = s.hitRatio || 0;
  const ups = (s.upstreams || []).map((u) => `<span class="tag ${u.healthy ? 'hit' : 'down'}">${esc(u.url.replace('http://', ''))}</span>`).join(' ');
  const tiers = ['memory', 'disk', 'upstream'].filter((t) => s.bytesServed && t in s.bytesServed)
    .map((t) => `<tr><th>${t} bytes/s</th><td>${fmtBytes(rates.tiers[t] || 0)}</td></tr>`).join('');
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
    </table></div>`;
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
