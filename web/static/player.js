// deepcast player page: dash.js with live stats. window.deepcast exposes
// the same figures to tests.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  session: null, chart: null, t0: 0, ladder: {}, points: [[], []], routers: new Set(), mpdOverride: '',
  stats: { errors: [], maxStall: 0, cacheHits: 0, cacheResponses: 0, downSwitches: 0, upSwitches: 0, stalls: 0, stallSeconds: 0,
           renditions: [], bitrate: 0, buffer: 0, throughput: 0, currentTime: 0, decodedFrames: 0, droppedFrames: 0,
           recent: [], audioTracks: [], audioTrack: -1, soundFetched: [], textTracks: [], textTrack: -1, cues: [], preview: null,
           liveLatency: 0, playheadDate: 0, serverCap: 0, serverDuress: false },
};
window.deepcast = state.stats;

// numberParam is the page parameter name's value raw as a number when ok
// takes it; 0 when it is not given, and, said on the page, when ok does
// not take it.
function numberParam(name, raw, ok, want) {
  if (!raw) return 0;
  const x = +raw;
  if (Number.isFinite(x) && ok(x)) return x;
  showError(`${name}=${raw}: ${want}`);
  return 0;
}

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

// cmsdAdvice reads the entry of the node nearest the player (the last)
// in a CMSD-Dynamic field (CTA-5006: a Structured Field list of node
// names with their keys as parameters): its suggested bitrate mb (kbit/s,
// 0 for none) and duress du; null when there is no field.
function cmsdAdvice(value) {
  if (!value) return null;
  let last = '', quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted && c === '\\') { last += c + (value[i + 1] || ''); i++; continue; }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) last = ''; else last += c;
  }
  last = last.trim();
  // The parameters follow the node's name (a quoted string or a token).
  let rest = last;
  if (last.startsWith('"')) {
    let i = 1;
    while (i < last.length && last[i] !== '"') i += last[i] === '\\' ? 2 : 1;
    rest = last.slice(i + 1);
  } else {
    rest = last.slice(Math.max(0, last.indexOf(';')));
  }
  const advice = { mb: 0, du: false };
  for (const p of rest.split(';').slice(1)) {
    const [k, v] = p.trim().split('=');
    if (k === 'mb' && /^\d+$/.test(v || '')) advice.mb = +v;
    if (k === 'du') advice.du = v === undefined || v === '?1';
  }
  return advice;
}

function recordSegment(url, headers) {
  const m = /\/vod\/[^/]+\/([^/]+)\/(\d+)\.m4s/.exec(url || '');
  if (!m) return;
  // What the edge suggests (dash.js and Shaka keep to it themselves; the
  // page caps hls.js with it): kept until an answer says otherwise.
  const advice = cmsdAdvice(headerValue(headers, 'cmsd-dynamic'));
  if (advice) {
    state.stats.serverDuress = advice.du;
    if (advice.mb !== state.stats.serverCap) {
      state.stats.serverCap = advice.mb;
      if (state.session && state.session.serverCap) state.session.serverCap(advice.mb);
    }
  }
  const cs = parseCacheStatus(headerValue(headers, 'cache-status'));
  state.stats.cacheResponses++;
  if (cs && cs.kind === 'hit') state.stats.cacheHits++;
  const row = { time: (performance.now() - state.t0) / 1000, rendition: m[1], n: +m[2], cache: cs };
  state.stats.recent.unshift(row);
  state.stats.recent.length = Math.min(state.stats.recent.length, 14);
  const lad = state.ladder[m[1]];
  if (lad && lad.type === 'audio') {
    // Which sound is being fetched: what the viewer chose in Sound.
    state.stats.soundFetched.push({ time: row.time, rendition: m[1], n: row.n });
    if (state.stats.soundFetched.length > 500) state.stats.soundFetched.shift();
  }
  if (lad && lad.type === 'video') {
    // Plotted at the segment's media time (its start in the video), not at
    // when it arrived: the chart reads as the quality of the video.
    const t = (row.n - 1) * (state.segmentDuration || 2);
    const i = state.points[0].indexOf(t);
    if (i >= 0) state.points[1][i] = lad.bandwidth / 1000; // a segment fetched again (a switch, a seek)
    else {
      let j = state.points[0].findIndex((x) => x > t);
      if (j < 0) j = state.points[0].length;
      state.points[0].splice(j, 0, t);
      state.points[1].splice(j, 0, lad.bandwidth / 1000);
    }
    if (state.chart) state.chart.setData(state.points);
  }
  renderSegments();
}

function renderSegments() {
  $('segments').innerHTML = state.stats.recent.map((r) => {
    const c = r.cache;
    const tag = c ? `<span class="tag ${esc(c.kind)}">${esc(c.kind)}</span>` : '<span class="muted">no cache</span>';
    return `<tr><td>${r.time.toFixed(1)}s</td><td>${esc(r.rendition)}/${r.n}</td><td>${tag}</td><td>${c ? esc(c.node) : 'origin'}</td></tr>`;
  }).join('');
}

// kbps formats a bitrate for people: 850 kbit/s, 2.4 Mbit/s, 209 Mbit/s.
function kbps(v) {
  if (!(v > 0)) return '–';
  if (v >= 10000) return `${Math.round(v / 1000)} Mbit/s`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)} Mbit/s`;
  return `${Math.round(v)} kbit/s`;
}

function makeChart() {
  if (!window.uPlot) return null;
  const width = Math.max(280, $('chart').clientWidth || 600);
  const top = Math.max(100, ...Object.values(state.ladder).filter((r) => r.type === 'video').map((r) => r.bandwidth / 1000));
  return new uPlot({
    width, height: 220,
    scales: { x: { time: false }, y: { range: () => [0, top * 1.15] } },
    axes: [{ stroke: '#8b98a5', grid: { stroke: '#2a3540' }, label: 'media time (s)' },
           { stroke: '#8b98a5', grid: { stroke: '#2a3540' }, label: 'video bitrate', size: 80, space: 24,
             incrs: [50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000],
             values: (u, vals) => vals.map((v) => (v === 0 ? '0' : kbps(v))) }],
    series: [{ label: 'media time (s)' },
             { label: 'video bitrate', stroke: '#4db6ff', width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: true },
               value: (u, v) => kbps(v) }],
  }, state.points, $('chart'));
}

// coreStrategies are the ABR strategies the Go core (WebAssembly) runs:
// deepcast's own, as many as the core offers.
const coreStrategies = new Set();

function abrRules(strategy) {
  // With the Go core every choice is its own: dash.js's rules are off.
  const core = coreStrategies.has(strategy);
  return {
    throughputRule: { active: !core && strategy !== 'bola' },
    bolaRule: { active: !core && strategy !== 'throughput' },
    insufficientBufferRule: { active: !core },
    switchHistoryRule: { active: !core },
    droppedFramesRule: { active: !core },
    abandonRequestsRule: { active: !core },
  };
}

// loadABRCore starts the player's ABR core (the Go code `deepcast sim`
// and `play` run) compiled to WebAssembly: /abr/wasm_exec.js is Go's
// loader, and the module sets window.deepcastABR.
async function loadABRCore() {
  await new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = '/abr/wasm_exec.js';
    s.onload = resolve;
    s.onerror = () => reject(new Error('no /abr/wasm_exec.js'));
    document.head.appendChild(s);
  });
  const go = new Go();
  const { instance } = await WebAssembly.instantiateStreaming(fetch('/abr/deepcast-abr.wasm'), go.importObject);
  go.run(instance); // runs main until it waits: deepcastABR is set by then
  if (!window.deepcastABR) throw new Error('the ABR core did not start');
  return window.deepcastABR;
}

// LIVE_CHUNKS is how many chunks the core plans a live session for: the
// most it takes (player.maxBrowserChunks).
const LIVE_CHUNKS = 100000;

// coreRules are two dash.js custom ABR rules run by the Go core. The
// quality rule's choices are the core's algorithm: the adapter turns
// dash.js's measurements (each video segment's bytes and download time,
// the buffer, the last rendition) into the core's state once per segment,
// and the core's choice into a representation within the bitrate cap.
// The abandonment rule, asked as a video segment comes in, hands the
// core the download's progress and gives it up for the lower rendition
// the core names (its stall rule, play -abandon stall's): dash.js's own
// abandonment rule is off with the core. Every decision is kept in
// window.deepcast.abrLog with the state it was made from, every
// abandonment in window.deepcast.abandons with the progress it saw.
function coreRules(p, algorithm) {
  const core = state.abrCore;
  const samples = [];
  const decisions = new Map();
  let chunk = 0;
  let firstIndex = null; // the first video segment's dash.js index
  let last = -1;
  let session = null;
  let ladder = null; // video representations, lowest bitrate first
  state.stats.abrLog = [];
  state.stats.abandons = [];
  p.on(dashjs.MediaPlayer.events.FRAGMENT_LOADING_COMPLETED, (e) => {
    const r = e.request;
    if (e.error || !r || r.mediaType !== 'video' || r.type !== 'MediaSegment') return;
    const ms = r.endDate && r.startDate ? r.endDate - r.startDate : 0;
    samples.push({ bytes: r.bytesLoaded || 0, ms: Math.max(0, ms) });
    if (ladder && r.representation) last = ladder.findIndex((x) => x.id === r.representation.id);
    // The next chunk is the one after the furthest segment in, counted
    // from the first: dash.js may fetch a segment twice (fast switching
    // replaces one buffered at a lower rendition), which is no new chunk.
    if (Number.isInteger(r.index)) {
      if (firstIndex === null) firstIndex = r.index;
      chunk = Math.max(chunk, r.index - firstIndex + 1);
    } else {
      chunk++;
    }
  });
  function DeepcastCoreRule() {
    const context = this.context;
    const SwitchRequest = dashjs.FactoryMaker.getClassFactoryByName('SwitchRequest');
    function getSwitchRequest(rulesContext) {
      const sr = SwitchRequest(context).create();
      const mediaInfo = rulesContext.getMediaInfo();
      if (!mediaInfo || mediaInfo.type !== 'video') return sr;
      const abr = rulesContext.getAbrController();
      if (!ladder) {
        ladder = [...abr.getPossibleVoRepresentations(mediaInfo, true)].sort((a, b) => a.bitrateInKbit - b.bitrateInKbit);
        const chunkSeconds = state.segmentDuration || 2;
        const video = { chunkSeconds, chunks: Math.max(1, Math.ceil(p.duration() / chunkSeconds - 1e-3)), bitrates: ladder.map((x) => x.bitrateInKbit) };
        if (p.isDynamic()) {
          // Live: duration() is the DVR window, not what is left to play.
          // The session runs on, and a live buffer holds no more than the
          // distance to the edge, which the core's plans count on.
          const delay = p.getTargetLiveDelay();
          video.chunks = LIVE_CHUNKS;
          video.liveDelay = delay > 0 && delay < 3600 ? delay : 4 * chunkSeconds;
        }
        const made = core.newSession(algorithm, JSON.stringify(video));
        if (made.error) { showError(`ABR core: ${made.error}`); return sr; }
        session = made.id;
        state.stats.abrVideo = video;
      }
      if (session === null) return sr;
      let rec = decisions.get(chunk);
      if (!rec) {
        const st = { chunk, buffer: p.getBufferLength('video') || 0, maxBuffer: state.bufferTarget > 0 ? state.bufferTarget : 12, last,
          history: samples.slice(-64) };
        if (chunk >= state.stats.abrVideo.chunks) return sr;
        const res = core.choose(session, JSON.stringify(st));
        if (res.error) { showError(`ABR core: ${res.error}`); return sr; }
        rec = { chunk, state: st, quality: res.quality };
        decisions.set(chunk, rec);
        state.stats.abrLog.push(rec);
      }
      // The page's cap: the highest allowed rendition at or below the
      // choice, or below the rendition a download of it was given up for.
      const allowed = new Set(abr.getPossibleVoRepresentationsFilteredBySettings(mediaInfo, true).map((x) => x.id));
      let q = rec.abandonedTo !== undefined ? rec.abandonedTo : rec.quality;
      while (q > 0 && !allowed.has(ladder[q].id)) q--;
      rec.applied = q;
      state.abrDecision = `${algorithm} (Go core): chunk ${chunk + 1} → ${ladder[rec.quality].height}p` + (q !== rec.quality ? `, capped to ${ladder[q].height}p` : '');
      sr.representation = ladder[q];
      sr.priority = 1; // strong
      sr.reason = { rule: 'DeepcastCoreRule', quality: rec.quality };
      return sr;
    }
    return { getSwitchRequest, reset() {} };
  }
  DeepcastCoreRule.__dashjs_factory_name = 'DeepcastCoreRule';
  function DeepcastAbandonRule() {
    const context = this.context;
    const SwitchRequest = dashjs.FactoryMaker.getClassFactoryByName('SwitchRequest');
    const givenUp = new Set(); // request indexes: each is given up once, as dash.js's own rule does
    function shouldAbandon(rulesContext) {
      const sr = SwitchRequest(context).create();
      const r = rulesContext.getCurrentRequest();
      if (session === null || !ladder || !r || r.mediaType !== 'video' || r.type !== 'MediaSegment' || givenUp.has(r.index)) return sr;
      // dash.js dates a request's start once it is over; while it runs,
      // its first progress trace starts where the request did.
      const sent = r.startDate || (r.traces && r.traces.length && r.traces[0].s);
      if (!sent || !r.firstByteDate) return sr;
      const from = ladder.findIndex((x) => x.id === (r.representation && r.representation.id));
      if (from <= 0) return sr;
      const ms = Math.max(0, Date.now() - sent.getTime());
      const progress = { chunk, rendition: from, bytes: Math.max(0, r.bytesLoaded || 0), size: r.bytesTotal > 0 ? r.bytesTotal : 0,
        ms, firstByteMs: Math.min(ms, Math.max(0, r.firstByteDate.getTime() - sent.getTime())),
        buffer: p.getBufferLength('video') || 0, last };
      const res = core.abandon(session, JSON.stringify(progress));
      if (res.error) { showError(`ABR core: ${res.error}`); return sr; }
      if (res.quality < 0) return sr;
      givenUp.add(r.index);
      const rec = decisions.get(chunk);
      if (rec) rec.abandonedTo = res.quality; // the quality rule asks again for this chunk
      state.stats.abandons.push({ progress, quality: res.quality });
      state.abrDecision = `${algorithm} (Go core): chunk ${chunk + 1} given up at ${ladder[from].height}p for ${ladder[res.quality].height}p`;
      sr.representation = ladder[res.quality];
      sr.priority = 1; // strong
      sr.reason = { rule: 'DeepcastAbandonRule', quality: res.quality };
      return sr;
    }
    return { shouldAbandon, reset() {} };
  }
  DeepcastAbandonRule.__dashjs_factory_name = 'DeepcastAbandonRule';
  return { quality: dashjs.FactoryMaker.getClassFactory(DeepcastCoreRule), abandon: dashjs.FactoryMaker.getClassFactory(DeepcastAbandonRule) };
}

// The engines the page plays with: dash.js (DASH), hls.js (HLS) and Shaka
// (either). Each adapter starts playback of url and reports to the same
// stats: segments with their Cache-Status, quality switches, errors.
function resetStats() {
  state.points = [[], []];
  state.stats.chart = state.points; // for tests: what the chart draws
  Object.assign(state.stats, { errors: [], cacheHits: 0, cacheResponses: 0, downSwitches: 0, upSwitches: 0, stalls: 0,
    stallSeconds: 0, renditions: [], recent: [], engine: $('engine').value, levels: [], audioTracks: [], audioTrack: -1, soundFetched: [],
    textTracks: [], textTrack: -1, cues: [], preview: null, liveLatency: 0, playheadDate: 0, serverCap: 0, serverDuress: false });
  state.lastRendition = null;
}

// renditionShown records a video quality the player switched to.
function renditionShown(bandwidth, height, width) {
  state.stats.renditions.push({ t: (performance.now() - state.t0) / 1000, bandwidth, height });
  const last = state.lastRendition;
  if (last) {
    if (bandwidth < last.bandwidth) state.stats.downSwitches++;
    if (bandwidth > last.bandwidth) state.stats.upSwitches++;
  }
  state.lastRendition = { bandwidth, height, width };
}

// sessionID names this page's playback session in the CMCD (CTA-5004)
// every engine sends with its requests, by which the edges tell their
// viewers apart (their dashboards show them).
const sessionID = 'deepcast-' + Math.random().toString(16).slice(2, 10);

const engines = {
  dashjs: {
    manifest: 'manifest.mpd',
    start(url) {
      const p = dashjs.MediaPlayer().create();
      const streaming = {
        abr: { rules: abrRules($('abr').value), maxBitrate: { video: +$('cap').value } },
        // Subtitles stay off until the viewer picks a track.
        text: { defaultEnabled: false },
        cmcd: { enabled: true, mode: 'query', sid: sessionID },
        // The edge's suggested bitrate (CMSD mb), for video and sound.
        cmsd: { enabled: true, abr: { applyMb: true } },
      };
      if (state.bufferTarget > 0) {
        // A short buffer makes ABR changes visible within seconds (tests, demos).
        const b = state.bufferTarget;
        // dash.js 5 names the target bufferTimeDefault (4's
        // stableBufferTime is gone and ignored): without it, it buffers
        // 12 to 18 s whatever the page asks.
        streaming.buffer = { bufferTimeDefault: b, bufferTimeAtTopQuality: b, bufferTimeAtTopQualityLongForm: b };
      }
      // Its live delay outranks the MPD's suggestedPresentationDelay.
      if (state.liveDelay > 0) streaming.delay = { liveDelay: state.liveDelay };
      if (state.catchup > 1) {
        // Towards dash.js's target live delay (where it joined), never
        // slower than normal when ahead of it.
        streaming.liveCatchup = { enabled: true, playbackRate: { min: 0, max: state.catchup - 1 } };
      }
      p.updateSettings({ streaming });
      if (coreStrategies.has($('abr').value) && state.abrCore) {
        const rules = coreRules(p, $('abr').value);
        p.addABRCustomRule('qualitySwitchRules', 'DeepcastCoreRule', rules.quality);
        p.addABRCustomRule('abandonFragmentRules', 'DeepcastAbandonRule', rules.abandon);
      }
      if (typeof p.addResponseInterceptor === 'function') {
        p.addResponseInterceptor((resp) => {
          try { recordSegment(resp.request && resp.request.url, resp.headers); } catch (e) { /* stats only */ }
          return Promise.resolve(resp);
        });
      }
      const ev = dashjs.MediaPlayer.events;
      p.on(ev.QUALITY_CHANGE_RENDERED, (e) => {
        if (e.mediaType !== 'video' || !e.newRepresentation) return;
        renditionShown(e.newRepresentation.bandwidth, e.newRepresentation.height, e.newRepresentation.width);
      });
      p.on(ev.ERROR, (e) => {
        // A failed segment download (codes 17 and 27) is retried by dash.js, on
        // another BaseURL if there is one: count it, it is not the end of playback.
        if (e.error && (e.error.code === 17 || e.error.code === 27)) { state.stats.networkErrors = (state.stats.networkErrors || 0) + 1; return; }
        showError((e.error && (e.error.message || e.error.code)) || 'unknown');
      });
      p.on(ev.PLAYBACK_ERROR, (e) => showError((e.error && e.error.message) || 'media error'));
      // An encrypted asset's key comes from the ClearKey licence endpoint
      // beside its manifest (a clear asset never asks).
      p.setProtectionData({ 'org.w3.clearkey': { serverURL: licenceURL(url), initDataTypes: ['keyids', 'cenc'] } });
      p.initialize($('video'), url, true);
      return {
        stop() { p.reset(); },
        sounds() {
          const tracks = p.getTracksFor('audio') || [];
          const cur = p.getCurrentTrackFor('audio');
          return { tracks: tracks.map(dashTrack), current: cur ? tracks.findIndex((t) => t.id === cur.id && t.index === cur.index) : -1 };
        },
        chooseSound(i) {
          const t = (p.getTracksFor('audio') || [])[i];
          if (t) p.setCurrentTrack(t);
        },
        texts() {
          const tracks = (p.getTracksFor('text') || []).map(dashTrack);
          const cur = p.getCurrentTextTrackIndex();
          return { tracks, current: Number.isInteger(cur) ? cur : -1 };
        },
        chooseText(i) { p.setTextTrack(i); },
        thumbnail(t) {
          return new Promise((resolve) => p.provideThumbnail(t, (th) =>
            resolve(th && th.url ? { url: th.url, x: th.x, y: th.y, w: th.width, h: th.height } : null)));
        },
        rules(strategy) { p.updateSettings({ streaming: { abr: { rules: abrRules(strategy) } } }); },
        cap(kbps) { p.updateSettings({ streaming: { abr: { maxBitrate: { video: kbps } } } }); },
        now() {
          const r = p.getCurrentRepresentationForType && p.getCurrentRepresentationForType('video');
          return { bandwidth: r && r.bandwidth, width: r && r.width, height: r && r.height,
            buffer: p.getBufferLength('video') || 0, throughput: p.getAverageThroughput ? p.getAverageThroughput('video') || 0 : 0,
            latency: p.isDynamic() ? p.getCurrentLiveLatency() : NaN, date: p.isDynamic() ? p.timeAsUTC() * 1000 : NaN };
        },
      };
    },
  },
  hlsjs: {
    manifest: 'master.m3u8',
    start(url) {
      // CMCD in the query, as dash.js sends it (headers would cost a CORS
      // preflight per request).
      const cfg = { capLevelToPlayerSize: false, cmcd: { sessionId: sessionID, useHeaders: false } };
      if (state.bufferTarget > 0) {
        // hls.js buffers up to 60 MB past maxBufferLength at low bitrates:
        // bound both, or a short clip is all fetched at its first level.
        Object.assign(cfg, { maxBufferLength: state.bufferTarget, maxMaxBufferLength: state.bufferTarget });
      }
      // Where hls.js joins, and its target latency (in place of three
      // target durations).
      if (state.liveDelay > 0) cfg.liveSyncDuration = state.liveDelay;
      // Towards hls.js's target latency (where it joined).
      if (state.catchup > 1) Object.assign(cfg, { lowLatencyMode: true, maxLiveSyncPlaybackRate: state.catchup });
      const hls = new Hls(cfg);
      const E = Hls.Events;
      hls.on(E.FRAG_LOADED, (_, d) => {
        const x = d.networkDetails;
        const headers = x && (x.headers || { get: (n) => (x.getResponseHeader ? x.getResponseHeader(n) : null) });
        try { recordSegment(d.frag && d.frag.url, headers); } catch (e) { /* stats only */ }
      });
      hls.on(E.LEVEL_SWITCHED, (_, d) => {
        const l = hls.levels[d.level];
        if (l) renditionShown(l.bitrate, l.height, l.width);
      });
      hls.on(E.MANIFEST_PARSED, () => {
        state.stats.levels = hls.levels.map((l) => ({ bitrate: l.bitrate, height: l.height, url: l.url && l.url[0] }));
        capHls(hls, effectiveCap(+$('cap').value));
      });
      hls.on(E.ERROR, (_, d) => {
        if (!d.fatal) { state.stats.networkErrors = (state.stats.networkErrors || 0) + 1; return; }
        showError(`hls.js ${d.type}: ${d.details}`);
      });
      hls.loadSource(url);
      hls.attachMedia($('video'));
      return {
        stop() { hls.destroy(); },
        sounds() {
          return { tracks: hls.audioTracks.map((t) => ({ label: t.name || '', lang: t.lang || '',
            role: /describes-video/.test(t.characteristics || '') ? 'description' : '' })), current: hls.audioTrack };
        },
        chooseSound(i) { hls.audioTrack = i; },
        texts() {
          return { tracks: hls.subtitleTracks.map((t) => ({ label: t.name || '', lang: t.lang || '',
            role: /transcribes-spoken-dialog/.test(t.characteristics || '') ? 'caption' : (t.forced ? 'forced-subtitle' : '') })),
            current: hls.subtitleTrack };
        },
        chooseText(i) { hls.subtitleDisplay = true; hls.subtitleTrack = i; },
        cap(kbps) { capHls(hls, effectiveCap(kbps)); },
        // hls.js reads no CMSD: the page caps it with the edge's
        // suggestion (a variant's BANDWIDTH includes its sound, as mb).
        serverCap() { capHls(hls, effectiveCap(+$('cap').value)); },
        now() {
          const l = hls.levels[hls.currentLevel];
          return { bandwidth: l && l.bitrate, width: l && l.width, height: l && l.height, buffer: bufferAhead(), throughput: hls.bandwidthEstimate || 0,
            latency: l && l.details && l.details.live ? hls.latency : NaN, date: hls.playingDate ? hls.playingDate.getTime() : NaN };
        },
      };
    },
  },
  'shaka-hls': { manifest: 'master.m3u8', start: (url) => startShaka(url) },
  'shaka-dash': { manifest: 'manifest.mpd', start: (url) => startShaka(url) },
};

// capHls keeps hls.js at or below kbps (all levels when negative).
// effectiveCap is the lower of the viewer's cap and the edge's suggestion
// (0 for neither).
function effectiveCap(kbps) {
  const server = state.stats.serverCap;
  if (!(server > 0)) return kbps;
  return kbps > 0 ? Math.min(kbps, server) : server;
}

function capHls(hls, kbps) {
  if (!(kbps > 0)) { hls.autoLevelCapping = -1; return; }
  let best = 0;
  hls.levels.forEach((l, i) => { if (l.bitrate <= kbps * 1000 && l.bitrate >= hls.levels[best].bitrate) best = i; });
  // Capping only: setting a level would turn hls.js's ABR off.
  hls.autoLevelCapping = best;
}

function bufferAhead() {
  const v = $('video');
  for (let i = 0; i < v.buffered.length; i++) {
    if (v.buffered.start(i) <= v.currentTime + 0.1 && v.currentTime <= v.buffered.end(i)) return v.buffered.end(i) - v.currentTime;
  }
  return 0;
}

// licenceURL is the ClearKey licence endpoint of the asset whose
// manifest is at url: /vod/{asset}/clearkey on the same node.
function licenceURL(url) {
  const u = new URL('clearkey', new URL(url, location.href));
  u.search = '';
  return u.toString();
}

function startShaka(url) {
  shaka.polyfill.installAll();
  const p = new shaka.Player();
  const cap = +$('cap').value;
  const streaming = state.bufferTarget > 0 ? { bufferingGoal: state.bufferTarget } : {};
  if (state.catchup > 1) {
    // Shaka follows live sync only when it is on as the stream loads: on,
    // with a target no stream is behind (so nothing happens) until
    // playback begins (below).
    streaming.liveSync = { enabled: true, targetLatency: 3600, targetLatencyTolerance: 0.5, maxPlaybackRate: state.catchup, minPlaybackRate: 1 };
  }
  // Shaka's presentation delay: a DASH MPD's suggestedPresentationDelay
  // would outrank the configured one, so it is set aside.
  const manifest = state.liveDelay > 0 ? { defaultPresentationDelay: state.liveDelay, dash: { ignoreSuggestedPresentationDelay: true } } : {};
  p.configure({ abr: { restrictions: { maxBandwidth: cap > 0 ? cap * 1000 : Infinity } }, streaming, manifest,
    cmcd: { enabled: true, sessionId: sessionID, useHeaders: false },
    cmsd: { enabled: true, applyMaximumSuggestedBitrate: true },
    drm: { servers: { 'org.w3.clearkey': licenceURL(url) } } });
  // Shaka 5.2's CMCD loses the licence URL's host and port as it adds its
  // query (http://vod/clip/clearkey?CMCD=…): the licence request goes out
  // as configured, without CMCD, which the edges do not count there.
  p.getNetworkingEngine().registerRequestFilter((type, req) => {
    if (type === shaka.net.NetworkingEngine.RequestType.LICENSE) req.uris = [licenceURL(url)];
  });
  p.getNetworkingEngine().registerResponseFilter((type, resp) => {
    try { recordSegment(resp.uri, resp.headers); } catch (e) { /* stats only */ }
  });
  const active = () => p.getVariantTracks().find((t) => t.active);
  const shown = () => { const t = active(); if (t) renditionShown(t.videoBandwidth || t.bandwidth, t.height, t.width); };
  p.addEventListener('adaptation', shown);
  p.addEventListener('variantchanged', shown);
  p.addEventListener('error', (e) => showError(`Shaka ${e.detail && e.detail.code}`));
  p.attach($('video')).then(() => p.load(url)).then(shown).catch((e) => showError(`Shaka ${e.code || e.message || e}`));
  // Shaka's live sync aims at a configured latency: with catch-up on,
  // make it the one playback began at, as the other engines' targets are.
  // It reckons latency from the end of its seek range (the edge less a
  // presentation delay), not as its liveLatency statistic does.
  const v = $('video');
  const began = () => {
    const lat = p.isLive() && v.currentTime > 0 ? p.seekRange().end - v.currentTime : NaN;
    if (!Number.isFinite(lat)) return;
    v.removeEventListener('timeupdate', began);
    p.configure({ streaming: { liveSync: { targetLatency: Math.max(lat, 0) } } });
  };
  if (state.catchup > 1) v.addEventListener('timeupdate', began);
  return {
    stop() { v.removeEventListener('timeupdate', began); p.destroy(); },
    sounds() {
      const tracks = p.getAudioTracks();
      return { tracks: tracks.map((t) => ({ label: t.label || '', lang: t.language || '', role: (t.roles || [])[0] || '' })),
        current: tracks.findIndex((t) => t.active) };
    },
    chooseSound(i) {
      const t = p.getAudioTracks()[i];
      if (t) p.selectAudioTrack(t);
    },
    texts() {
      const tracks = p.getTextTracks();
      return { tracks: tracks.map((t) => ({ label: t.label || '', lang: t.language || '', role: (t.roles || [])[0] || '' })),
        current: tracks.findIndex((t) => t.active) };
    },
    // Shaka 5 shows the selected track; null unloads it (subtitles off).
    chooseText(i) { p.selectTextTrack(p.getTextTracks()[i] || null); },
    async thumbnail(t) {
      const track = p.getImageTracks()[0];
      const th = track && await p.getThumbnails(track.id, t);
      return th && th.uris && th.uris.length ? { url: th.uris[0], x: th.positionX, y: th.positionY, w: th.width, h: th.height } : null;
    },
    cap(kbps) { p.configure({ abr: { restrictions: { maxBandwidth: kbps > 0 ? kbps * 1000 : Infinity } } }); },
    now() {
      const t = active();
      const st = p.getStats();
      return { bandwidth: t && (t.videoBandwidth || t.bandwidth), width: t && t.width, height: t && t.height, buffer: bufferAhead(), throughput: st.estimatedBandwidth || 0,
        latency: p.isLive() ? st.liveLatency : NaN, date: p.isLive() ? p.getPlayheadTimeAsDate().getTime() : NaN };
    },
  };
}

// dashTrack is a dash.js audio or text track as the Sound and Subtitles
// menus list it. dash.js 5 gives labels and roles as objects, older
// ones as strings.
function dashTrack(t) {
  const label = (t.labels || [])[0];
  const role = (t.roles || [])[0];
  return { label: (label && (label.text || label)) || '', lang: t.lang || '', role: (role && (role.value || role)) || '' };
}

// trackMenus are the Sound and Subtitles menus: each lists the engine's
// tracks of its kind (languages, commentaries, audio description;
// subtitle tracks after "off") with the one playing, and applies a
// language asked for in the page's URL (?sound=fr, ?subtitles=en) once
// the tracks are known.
const trackMenus = {
  sound: { list: 'sounds', choose: 'chooseSound', menu: 'sound', tracks: 'audioTracks', current: 'audioTrack', off: false, key: '', want: '' },
  text: { list: 'texts', choose: 'chooseText', menu: 'subtitles', tracks: 'textTracks', current: 'textTrack', off: true, key: '', want: '' },
};

// syncMenu brings menu m up to date with the session; it returns the
// engine's list, or null when there is none yet or a choice was just made.
function syncMenu(m) {
  const session = state.session;
  if (!session || !session[m.list]) return null;
  let list;
  try { list = session[m.list](); } catch (e) { return null; /* not ready yet */ }
  if (!list || !list.tracks) return null;
  const key = JSON.stringify(list.tracks);
  if (key !== m.key) {
    m.key = key;
    state.stats[m.tracks] = list.tracks;
    $(m.menu).innerHTML = (m.off ? '<option value="-1">off</option>' : '') +
      list.tracks.map((t, i) => `<option value="${i}">${esc(soundName(t, i))}</option>`).join('');
    $(m.menu).disabled = list.tracks.length < (m.off ? 1 : 2);
  }
  if (m.want && list.tracks.length) {
    const i = list.tracks.findIndex((t) => t.lang === m.want || t.lang.startsWith(m.want + '-'));
    m.want = '';
    if (i >= 0 && i !== list.current) { session[m.choose](i); return null; }
  }
  state.stats[m.current] = list.current;
  if (m.off || list.current >= 0) $(m.menu).value = String(list.current);
  return list;
}

// showText keeps the Subtitles menu and records the cues on screen (for
// tests: what a viewer reads when).
function showText() {
  if (!syncMenu(trackMenus.text)) return;
  const v = $('video');
  const shown = [];
  for (const tt of v.textTracks) {
    if (tt.mode !== 'showing' || !tt.activeCues) continue;
    for (const c of tt.activeCues) shown.push(c.text);
  }
  if (shown.length) {
    state.stats.cues.push({ t: v.currentTime, text: shown.join(' / ') });
    if (state.stats.cues.length > 500) state.stats.cues.shift();
  }
}

// The seek bar under the video: it shows how far playback is, jumps where
// it is clicked, and over it the thumbnail of the time under the pointer
// (DASH thumbnail tiles with dash.js and Shaka, HLS image playlists with
// Shaka; hls.js reads none).
function scrubTime(ev) {
  const r = $('scrub').getBoundingClientRect();
  const d = $('video').duration;
  if (!(d > 0) || r.width <= 0) return -1;
  return Math.min(Math.max((ev.clientX - r.left) / r.width, 0), 1) * d;
}

async function showPreview(ev) {
  const t = scrubTime(ev);
  const session = state.session;
  if (t < 0 || !session || !session.thumbnail) return;
  let th = null;
  try { th = await session.thumbnail(t); } catch (e) { /* none */ }
  const box = $('preview');
  if (!th) { box.classList.add('hidden'); return; }
  const img = $('preview-img');
  img.style.width = `${th.w}px`;
  img.style.height = `${th.h}px`;
  img.style.backgroundImage = `url("${encodeURI(th.url)}")`;
  img.style.backgroundPosition = `-${th.x}px -${th.y}px`;
  $('preview-time').textContent = `${t.toFixed(1)} s`;
  box.style.left = `${ev.clientX - $('scrub').getBoundingClientRect().left}px`;
  box.classList.remove('hidden');
  state.stats.preview = { t, url: th.url, x: th.x, y: th.y, w: th.w, h: th.h };
}

function soundName(t, i) {
  const name = t.label || t.lang || `Audio ${i + 1}`;
  return t.label && t.lang ? `${name} (${t.lang})` : name;
}

function applyCap() {
  if (state.session) state.session.cap(+$('cap').value);
}

// moreAssets is the value of the asset list's last entry while the
// library has pages not fetched yet; no asset name can be it.
const moreAssets = '/more';

function play() {
  const asset = $('asset').value;
  const node = $('node').value;
  if (!state.mpdOverride && (!asset || asset === moreAssets || !node)) return;
  if (state.session) { state.session.stop(); state.session = null; }
  $('video').playbackRate = 1; // a live session may have left it catching up
  resetStats();
  for (const m of Object.values(trackMenus)) {
    m.key = '';
    $(m.menu).innerHTML = '';
    $(m.menu).disabled = true;
  }
  $('error').classList.add('hidden');
  // Live catch-up, as deepcast play -catchup: at most 2× (what every
  // engine allows).
  state.catchup = numberParam('catchup', state.catchupParam, (r) => r > 1 && r <= 2, 'want a playback rate above 1, at most 2');
  // How far behind a live stream's edge to join, as deepcast play
  // -live-delay (and its bound).
  state.liveDelay = numberParam('livedelay', state.liveDelayParam, (d) => d > 0 && d <= 3600,
    'want the seconds behind the live edge to join at, above 0, at most 3600');
  state.t0 = performance.now();
  if (state.chart) state.chart.setData(state.points);
  const engine = engines[$('engine').value] || engines.dashjs;
  // Through the router, ask for a content-steered manifest: the edges as
  // pathways (BaseURLs, or PATHWAY-IDs in HLS), and the player follows the
  // router's steering manifest.
  const viaRouter = state.routers.has(node);
  let url = state.mpdOverride || `${node}/vod/${asset}/${engine.manifest}${viaRouter ? '?route=steering' : ''}`;
  // A viewer's access token (?cat= on this page) goes on the manifest's
  // URL only: the edge answers with a session cookie that carries it to
  // the segments (and renews it when the token asks).
  if (state.token && !state.mpdOverride) url += (url.includes('?') ? '&' : '?') + 'cat=' + encodeURIComponent(state.token);
  state.stats.url = url;
  state.playingAbr = $('abr').value;
  state.abrDecision = '';
  state.session = engine.start(url);
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
  if (state.session) {
    try {
      const n = state.session.now();
      if (n.bandwidth) {
        s.bitrate = Math.round(n.bandwidth / 1000);
        $('s-rendition').textContent = `${n.width}×${n.height}`;
        $('s-bitrate').textContent = kbps(s.bitrate);
      }
      s.buffer = n.buffer || 0;
      s.throughput = Math.round(n.throughput > 100000 ? n.throughput / 1000 : n.throughput || 0);
      // A live stream's distance from its edge, as the engine reckons it
      // (NaN on demand, and before it knows).
      s.liveLatency = Number.isFinite(n.latency) && n.latency > 0 ? n.latency : 0;
      // The wall-clock time of the media shown, by the stream's clock (its
      // availabilityStartTime, or an HLS playlist's PROGRAM-DATE-TIMEs), in
      // ms: 0 on demand.
      s.playheadDate = Number.isFinite(n.date) && s.liveLatency > 0 ? n.date : 0;
    } catch (e) { /* not ready yet */ }
  }
  $('s-live-box').classList.toggle('hidden', !(s.liveLatency > 0));
  s.playbackRate = v.playbackRate;
  if (s.liveLatency > 0) $('s-live').textContent = s.liveLatency.toFixed(1) + (v.playbackRate > 1 ? ` (playing at ${+v.playbackRate.toFixed(2)}×)` : '');
  $('s-buffer').textContent = s.buffer.toFixed(1);
  $('s-throughput').textContent = kbps(s.throughput);
  $('s-stalls').textContent = `${s.stalls} (${s.stallSeconds.toFixed(1)})`;
  $('s-frames').textContent = `${s.decodedFrames} / ${s.droppedFrames}`;
  $('s-hits').textContent = `${s.cacheHits} / ${s.cacheResponses}`;
  $('s-switches').textContent = `${s.downSwitches} / ${s.upSwitches}`;
  $('s-abr').textContent = state.abrDecision || '–';
  $('s-cmsd-box').classList.toggle('hidden', !(s.serverCap > 0) && !s.serverDuress);
  $('s-cmsd').textContent = (s.serverCap > 0 ? '≤ ' + kbps(s.serverCap) : '–') + (s.serverDuress ? ' (under duress)' : '');
  syncMenu(trackMenus.sound);
  showText();
  const d = v.duration;
  $('scrub-fill').style.width = d > 0 ? `${Math.min(100, (v.currentTime / d) * 100)}%` : '0';
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
  if (window.deepcastMissingModules || !window.dashjs || !window.Hls || !window.shaka) {
    $('modules-missing').classList.remove('hidden');
  }
  const cfg = await (await fetch('/config.json')).json();
  if (cfg.abrCore) {
    try {
      state.abrCore = await loadABRCore();
      const labels = { deepcast: 'deepcast (Go core in WebAssembly)', 'deepcast-learned': 'deepcast-learned (learned policy, WebAssembly)' };
      for (const name of Object.keys(labels)) {
        if (!state.abrCore.algorithms.includes(name)) continue;
        coreStrategies.add(name);
        const o = document.createElement('option');
        o.value = name;
        o.textContent = labels[name];
        $('abr').appendChild(o);
      }
    } catch (e) {
      console.warn('ABR core not loaded', e);
    }
  }
  const nodes = cfg.nodes && cfg.nodes.length ? cfg.nodes : [{ name: cfg.self || 'this server', role: '', url: location.origin }];
  $('served-by').textContent = `served by ${cfg.self || location.host}`;
  const params = new URLSearchParams(location.search);
  // Play from this node by default, also when the page was opened under
  // another name than the node's configured URL (a load balancer's name, a
  // cleartext port): matched by name, not address, lest the viewer be
  // sent around the CDN to the first node of the list, the origin.
  const self = nodes.find((n) => n.url === location.origin) || nodes.find((n) => cfg.self && n.name === cfg.self);
  const preferred = params.get('node') || (self ? self.url : location.origin);
  for (const n of nodes) if (n.role === 'router') state.routers.add(n.url);
  if (params.get('mpd')) state.mpdOverride = params.get('mpd');
  if (params.get('cat')) state.token = params.get('cat');
  $('node').innerHTML = nodes.map((n) => `<option value="${esc(n.url)}" ${n.url === preferred ? 'selected' : ''}>${esc(n.name)} (${esc(n.role)})</option>`).join('');
  // The catalogue lives at the origin; try it first, then any node that has one.
  const candidates = [...nodes].sort((a, b) => (b.role === 'origin') - (a.role === 'origin'));
  let assets = null;
  let listing = null; // where the listing came from, and the name its next page starts after
  const wanted = params.get('asset');
  for (const n of candidates) {
    try {
      const resp = await fetch(`${n.url}/api/assets`);
      if (!resp.ok) continue;
      const page = await resp.json();
      assets = page.assets || [];
      listing = { url: n.url, next: page.next || '' };
      // A listing is one page of a large library: an asset asked for by
      // name may be past it.
      if (wanted && !assets.some((a) => a.name === wanted)) {
        const one = await fetch(`${n.url}/api/assets/${encodeURIComponent(wanted)}`);
        if (one.ok) assets.unshift(await one.json());
      }
      break;
    } catch (e) { /* next */ }
  }
  if (assets === null) { assets = []; showError('no node of this setup lists assets (is the origin up?)'); }
  const chosen = () => assets.find((a) => a.name === $('asset').value) || assets[0];
  // The list offers the library a page at a time: its last entry, while
  // pages are left, fetches the next one.
  const showAssets = () => {
    for (const a of assets) for (const r of a.ladder) state.ladder[r.id] = r;
    const keep = $('asset').value;
    $('asset').innerHTML = assets.map((a) => `<option value="${esc(a.name)}">${esc(a.name)} (${a.duration.toFixed(0)} s, ${a.ladder.length} renditions)</option>`).join('') +
      (listing && listing.next ? `<option value="${moreAssets}">more assets after ${esc(listing.next)}…</option>` : '');
    if (keep && keep !== moreAssets) $('asset').value = keep;
  };
  const showMore = async () => {
    const had = new Set(assets.map((a) => a.name));
    let added = null;
    // Pages until one brings an asset not listed yet (the one opened by
    // name may be all a page holds), bounded.
    for (let i = 0; i < 10 && listing.next && !added; i++) {
      const resp = await fetch(`${listing.url}/api/assets?after=${encodeURIComponent(listing.next)}`);
      if (!resp.ok) throw new Error(`listing after ${listing.next}: ${resp.status}`);
      const page = await resp.json();
      listing.next = page.next || '';
      for (const a of page.assets || []) {
        if (had.has(a.name)) continue;
        assets.push(a);
        added = added || a.name;
      }
    }
    showAssets();
    $('asset').value = added || (assets[0] || {}).name || '';
  };
  showAssets();
  if (wanted) $('asset').value = wanted;
  state.segmentDuration = (chosen() || {}).segmentDuration || 2;
  $('asset').addEventListener('change', async () => {
    if ($('asset').value === moreAssets) {
      try {
        await showMore();
      } catch (e) {
        showError(e.message || e);
        showAssets();
      }
    }
    state.segmentDuration = (chosen() || {}).segmentDuration || 2;
  });
  if (params.get('abr')) $('abr').value = params.get('abr');
  if (params.get('engine')) $('engine').value = params.get('engine');
  if (params.get('buffer')) state.bufferTarget = +params.get('buffer');
  state.catchupParam = params.get('catchup') || '';
  state.liveDelayParam = params.get('livedelay') || '';
  if (params.get('cap')) setCapValue(params.get('cap'));
  trackMenus.sound.want = params.get('sound') || '';
  trackMenus.text.want = params.get('subtitles') || '';
  state.chart = makeChart();
  watchStalls();
  $('play').addEventListener('click', play);
  $('cap').addEventListener('change', applyCap);
  $('scrub').addEventListener('mousemove', showPreview);
  $('scrub').addEventListener('mouseleave', () => $('preview').classList.add('hidden'));
  $('scrub').addEventListener('click', (ev) => { const t = scrubTime(ev); if (t >= 0) $('video').currentTime = t; });
  for (const m of Object.values(trackMenus)) {
    $(m.menu).addEventListener('change', () => {
      if (state.session && state.session[m.choose]) state.session[m.choose](+$(m.menu).value);
    });
  }
  $('abr').addEventListener('change', () => {
    // The Go core's rule is added when dash.js starts: to or from it, restart.
    if (coreStrategies.has($('abr').value) || coreStrategies.has(state.playingAbr)) { play(); return; }
    if (state.session && state.session.rules) state.session.rules($('abr').value);
  });
  $('engine').addEventListener('change', play);
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
// For tests: the tick labels the chart drew on its bitrate axis.
window.deepcastChartTicks = () => (state.chart && state.chart.axes[1]._values) || [];
init().catch((e) => showError(e.message || e));
