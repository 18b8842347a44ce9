// deepcast player page: dash.js with live stats. window.deepcast exposes
// the same figures to tests.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  player: null, chart: null, t0: 0, ladder: {}, points: [[], []], routers: new Set(), mpdOverride: '',
  stats: { errors: [], maxStall: 0, cacheHits: 0, cacheResponses: 0, downSwitches: 0, upSwitches: 0, stalls: 0, stallSeconds: 0,
           renditions: [], bitrate: 0, buffer: 0, throughput: 0, currentTime: 0, decodedFrames: 0, droppedFrames: 0,
           recent: [] },
};
window.deepcast = state.stats;

function showError(msg) {
  state.stats.errors.push(String(msg));
  const el = $('error');
  el.textContent = 'Playback error: ' + msg;
  el.classList.remove('hidden');
}

// Cache-Status lists one entry per cache, nearest the origin first; the
// last entry is the node that answered us.
function parseCacheStatus(value) {
  if (!value) return null;
  const entries = value.split(',').map((s) => s.trim()).filter(Boolean);
  const last = entries[entries.length - 1].split(';').map((s) => s.trim());
  const node = last[0];
  const params = last.slice(1);
  let kind = 'miss';
  if (params.includes('hit')) kind = params.some((p) => p.startsWith('detail=stale')) ? 'stale' : 'hit';
  else if (params.includes('fwd=stale')) kind = 'stale';
  return { node, kind, chain: entries.length, raw: value };
}

function headerValue(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === 'function') return headers.get(name);
  for (const k of Object.keys(headers)) if (k.toLowerCase() === name) return headers[k];
  return null;
}

function recordSegment(url, headers) {
  const m = /\/vod\/[^/]+\/([^/]+)\/(\d+)\.m4s/.exec(url || '');
  if (!m) return;
  const cs = parseCacheStatus(headerValue(headers, 'cache-status'));
  state.stats.cacheResponses++;
  if (cs && cs.kind === 'hit') state.stats.cacheHits++;
  const row = { time: (performance.now() - state.t0) / 1000, rendition: m[1], n: +m[2], cache: cs };
  state.stats.recent.unshift(row);
  state.stats.recent.length = Math.min(state.stats.recent.length, 14);
  const lad = state.ladder[m[1]];
  if (lad && lad.type === 'video') {
    state.points[0].push(row.time);
    state.points[1].push(lad.bandwidth / 1000);
    if (state.chart) state.chart.setData(state.points);
  }
  renderSegments();
}

function renderSegments() {
  $('segments').innerHTML = state.stats.recent.map((r) => {
    const c = r.cache;
    const tag = c ? `<span class="tag ${c.kind}">${c.kind}</span>` : '<span class="muted">no cache</span>';
    return `<tr><td>${r.time.toFixed(1)}s</td><td>${r.rendition}/${r.n}</td><td>${tag}</td><td>${c ? c.node : 'origin'}</td></tr>`;
  }).join('');
}

function makeChart() {
  if (!window.uPlot) return null;
  const width = Math.max(280, $('chart').clientWidth || 600);
  return new uPlot({
    width, height: 180,
    scales: { x: { time: false } },
    axes: [{ stroke: '#8b98a5', grid: { stroke: '#2a3540' }, label: 'time (s)' },
           { stroke: '#8b98a5', grid: { stroke: '#2a3540' }, label: 'kbit/s' }],
    series: [{ label: 't' }, { label: 'video bitrate', stroke: '#4db6ff', width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: true } }],
  }, state.points, $('chart'));
}

function abrRules(strategy) {
  return {
    throughputRule: { active: strategy !== 'bola' },
    bolaRule: { active: strategy !== 'throughput' },
  };
}

function applyCap() {
  if (!state.player) return;
  const cap = +$('cap').value;
  state.player.updateSettings({ streaming: { abr: { maxBitrate: { video: cap } } } });
}

function play() {
  const asset = $('asset').value;
  const node = $('node').value;
  if (!state.mpdOverride && (!asset || !node)) return;
  if (state.player) { state.player.reset(); }
  state.points = [[], []];
  Object.assign(state.stats, { errors: [], cacheHits: 0, cacheResponses: 0, downSwitches: 0, upSwitches: 0, stalls: 0,
    stallSeconds: 0, renditions: [], recent: [] });
  $('error').classList.add('hidden');
  state.t0 = performance.now();
  if (state.chart) state.chart.setData(state.points);
  // Through the router, ask for a content-steered MPD: one BaseURL per edge,
  // and dash.js follows the router's steering manifest.
  const viaRouter = state.routers.has(node);
  const url = state.mpdOverride || `${node}/vod/${asset}/manifest.mpd${viaRouter ? '?route=steering' : ''}`;
  const p = dashjs.MediaPlayer().create();
  state.player = p;
  const streaming = {
    abr: { rules: abrRules($('abr').value), maxBitrate: { video: +$('cap').value } },
    cmcd: { enabled: true, mode: 'query', sid: 'deepcast-' + Math.random().toString(16).slice(2, 10) },
  };
  if (state.bufferTarget > 0) {
    // A short buffer makes ABR changes visible within seconds (tests, demos).
    const b = state.bufferTarget;
    streaming.buffer = { stableBufferTime: b, bufferTimeAtTopQuality: b, bufferTimeAtTopQualityLongForm: b };
  }
  p.updateSettings({ streaming });
  if (typeof p.addResponseInterceptor === 'function') {
    p.addResponseInterceptor((resp) => {
      try { recordSegment(resp.request && resp.request.url, resp.headers); } catch (e) { /* stats only */ }
      return Promise.resolve(resp);
    });
  }
  const ev = dashjs.MediaPlayer.events;
  let last = null;
  p.on(ev.QUALITY_CHANGE_RENDERED, (e) => {
    if (e.mediaType !== 'video' || !e.newRepresentation) return;
    const r = e.newRepresentation;
    state.stats.renditions.push({ t: (performance.now() - state.t0) / 1000, bandwidth: r.bandwidth, height: r.height });
    if (last) {
      if (r.bandwidth < last.bandwidth) state.stats.downSwitches++;
      if (r.bandwidth > last.bandwidth) state.stats.upSwitches++;
    }
    last = r;
  });
  p.on(ev.ERROR, (e) => {
    // A failed segment download (codes 17 and 27) is retried by dash.js, on
    // another BaseURL if there is one: count it, it is not the end of playback.
    if (e.error && (e.error.code === 17 || e.error.code === 27)) { state.stats.networkErrors = (state.stats.networkErrors || 0) + 1; return; }
    showError((e.error && (e.error.message || e.error.code)) || 'unknown');
  });
  p.on(ev.PLAYBACK_ERROR, (e) => showError((e.error && e.error.message) || 'media error'));
  p.initialize($('video'), url, true);
}

function tick() {
  const v = $('video');
  const s = state.stats;
  s.currentTime = v.currentTime;
  if (v.getVideoPlaybackQuality) {
    const q = v.getVideoPlaybackQuality();
    s.decodedFrames = q.totalVideoFrames;
    s.droppedFrames = q.droppedVideoFrames;
  }
  const p = state.player;
  if (p) {
    try {
      const r = p.getCurrentRepresentationForType && p.getCurrentRepresentationForType('video');
      if (r) {
        s.bitrate = Math.round(r.bandwidth / 1000);
        $('s-rendition').textContent = `${r.width}×${r.height}`;
        $('s-bitrate').textContent = s.bitrate;
      }
      s.buffer = p.getBufferLength('video') || 0;
      s.throughput = p.getAverageThroughput ? Math.round(p.getAverageThroughput('video') || 0) : 0;
    } catch (e) { /* not ready yet */ }
  }
  $('s-buffer').textContent = s.buffer.toFixed(1);
  $('s-throughput').textContent = s.throughput || '–';
  $('s-stalls').textContent = `${s.stalls} (${s.stallSeconds.toFixed(1)})`;
  $('s-frames').textContent = `${s.decodedFrames} / ${s.droppedFrames}`;
  $('s-hits').textContent = `${s.cacheHits} / ${s.cacheResponses}`;
  $('s-switches').textContent = `${s.downSwitches} / ${s.upSwitches}`;
}

function watchStalls() {
  const v = $('video');
  let since = 0;
  v.addEventListener('waiting', () => { if (v.currentTime > 0 && !since) { since = performance.now(); state.stats.stalls++; } });
  const end = () => {
    if (!since) return;
    const d = (performance.now() - since) / 1000;
    state.stats.stallSeconds += d;
    state.stats.maxStall = Math.max(state.stats.maxStall || 0, d);
    since = 0;
  };
  v.addEventListener('playing', end);
  v.addEventListener('seeked', end);
}

async function init() {
  if (window.deepcastMissingModules || !window.dashjs) {
    $('modules-missing').classList.remove('hidden');
  }
  const cfg = await (await fetch('/config.json')).json();
  const nodes = cfg.nodes && cfg.nodes.length ? cfg.nodes : [{ name: cfg.self || 'this server', role: '', url: location.origin }];
  $('served-by').textContent = `served by ${cfg.self || location.host}`;
  const params = new URLSearchParams(location.search);
  const preferred = params.get('node') || location.origin;
  for (const n of nodes) if (n.role === 'router') state.routers.add(n.url);
  if (params.get('mpd')) state.mpdOverride = params.get('mpd');
  $('node').innerHTML = nodes.map((n) => `<option value="${n.url}" ${n.url === preferred ? 'selected' : ''}>${n.name} (${n.role})</option>`).join('');
  // The catalogue lives at the origin; try it first, then any node that has one.
  const candidates = [...nodes].sort((a, b) => (b.role === 'origin') - (a.role === 'origin'));
  let assets = null;
  for (const n of candidates) {
    try {
      const resp = await fetch(`${n.url}/api/assets`);
      if (resp.ok) { assets = (await resp.json()).assets || []; break; }
    } catch (e) { /* next */ }
  }
  if (assets === null) { assets = []; showError('no node of this setup lists assets (is the origin up?)'); }
  for (const a of assets) for (const r of a.ladder) state.ladder[r.id] = r;
  $('asset').innerHTML = assets.map((a) => `<option value="${a.name}">${a.name} (${a.duration.toFixed(0)} s, ${a.ladder.length} renditions)</option>`).join('');
  if (params.get('asset')) $('asset').value = params.get('asset');
  if (params.get('abr')) $('abr').value = params.get('abr');
  if (params.get('buffer')) state.bufferTarget = +params.get('buffer');
  if (params.get('cap')) setCapValue(params.get('cap'));
  state.chart = makeChart();
  watchStalls();
  $('play').addEventListener('click', play);
  $('cap').addEventListener('change', applyCap);
  $('abr').addEventListener('change', () => state.player && state.player.updateSettings({ streaming: { abr: { rules: abrRules($('abr').value) } } }));
  setInterval(tick, 250);
  if (params.get('autoplay') !== '0' && (assets.length || state.mpdOverride) && window.dashjs) play();
}

// setCapValue selects a cap, adding the option when the list lacks it.
function setCapValue(kbps) {
  const v = String(kbps);
  if (![...$('cap').options].some((o) => o.value === v)) {
    const o = document.createElement('option');
    o.value = v;
    o.textContent = `${v} kbit/s`;
    $('cap').appendChild(o);
  }
  $('cap').value = v;
}

window.deepcastSetCap = (kbps) => { setCapValue(kbps); applyCap(); };
init().catch((e) => showError(e.message || e));
