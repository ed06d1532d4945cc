// faultline report: draws the page from the embedded JSON. No dependencies,
// no network. Canvas for the timeline and the plots (only what is visible
// is drawn, bars narrower than a pixel are merged), SVG for the partial
// linearization. After the first render, <body> carries data-* attributes
// that tests read (data-rendered, data-render-ms, data-ops, data-faults,
// data-drawn-ops, data-fault-bands, data-witness-ops, data-errors).
(function () {
  'use strict';
  var errors = [];
  function noteError(msg) {
    errors.push(String(msg));
    if (document.body) document.body.setAttribute('data-errors', errors.join(' | '));
  }
  window.addEventListener('error', function (e) { noteError(e.message); });

  var D = JSON.parse(document.getElementById('faultline-data').textContent);
  var COLORS = ['#2e9e5b', '#d64541', '#f0a030', '#9a9a9a'];
  var OUTCOME = ['ok', 'fail', 'info', 'pending'];
  var FAULT_COLORS = { partition: 'rgba(124, 77, 255, 0.13)', kill: 'rgba(214, 69, 65, 0.13)', pause: 'rgba(31, 95, 191, 0.12)', loss: 'rgba(160, 110, 40, 0.14)', delay: 'rgba(0, 150, 160, 0.12)', clock: 'rgba(200, 150, 0, 0.14)' };
  var FAULT_EDGE = { partition: '#7c4dff', kill: '#d64541', pause: '#1f5fbf', loss: '#a06e28', delay: '#0096a0', clock: '#c89600' };

  // ---- decode the operations (columns, delta-coded) ----
  var O = D.ops, n = O.n | 0;
  var t0 = new Float64Array(n), t1 = new Float64Array(n), lane = new Int32Array(n), outc = new Uint8Array(n);
  var fcode = new Int32Array(n), kcode = new Int32Array(n), ncode = new Int32Array(n), idx = new Float64Array(n);
  var endT = D.end || 0, maxDur = 0, acc = 0, iacc = 0, i;
  for (i = 0; i < n; i++) {
    acc += O.t0[i]; t0[i] = acc;
    var d = O.d[i];
    t1[i] = d < 0 ? Math.max(endT, acc) : acc + d;
    if (t1[i] - acc > maxDur) maxDur = t1[i] - acc;
    lane[i] = O.p[i]; outc[i] = O.o[i]; fcode[i] = O.f[i]; kcode[i] = O.k[i]; ncode[i] = O.n_[i];
    iacc += O.i[i]; idx[i] = iacc;
    if (t1[i] > endT) endT = t1[i];
  }
  var errOf = {};
  (O.err || []).forEach(function (c) { errOf[c[0]] = O.errs[c[1]]; });
  var isFinal = {};
  (O.final || []).forEach(function (p) { isFinal[p] = true; });
  var LANES = D.lanes || [];
  var nLanes = Math.max(1, LANES.length);
  var proc = O.pr || [];
  var nProcs = LANES.reduce(function (a, l) { return a + l.length; }, 0);
  var faults = D.faults || [];
  faults.forEach(function (f) { if (f.e > endT) endT = f.e; });
  if (endT <= 0) endT = 1;

  function posOfIndex(ix) {
    var lo = 0, hi = n - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (idx[mid] < ix) lo = mid + 1; else if (idx[mid] > ix) hi = mid - 1; else return mid;
    }
    return -1;
  }
  function fmtVal(v) { return v === null || v === undefined ? 'nil' : String(v); }
  function opText(p) {
    var f = O.fs[fcode[p]], k = kcode[p] >= 0 ? ' ' + O.ks[kcode[p]] : '';
    var s = 'process ' + proc[p] + ': ' + f + k + ' ' + fmtVal(O.v[p]) + ' → ' + OUTCOME[outc[p]];
    return s;
  }
  function opDetail(p) {
    var lines = [opText(p),
      'invoked ' + fmtMs(t0[p]) + ', ' + (outc[p] === 3 ? 'never completed' : 'completed ' + fmtMs(t1[p]) + ' (' + fmtDur(t1[p] - t0[p]) + ')'),
      'event index ' + idx[p] + (ncode[p] >= 0 ? ', node ' + O.nodes[ncode[p]] : '') + (isFinal[p] ? ', final read' : '')];
    if (errOf[p] !== undefined) lines.push('error: ' + errOf[p]);
    return lines.join('\n');
  }
  function fmtMs(us) { return (us / 1e6).toFixed(us < 1e7 ? 4 : 3) + ' s'; }
  function fmtDur(us) { return us >= 1e6 ? (us / 1e6).toFixed(2) + ' s' : us >= 1000 ? (us / 1000).toFixed(2) + ' ms' : Math.round(us) + ' µs'; }

  // ---- DOM helpers ----
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (c) { if (c !== null && c !== undefined) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function badge(v) {
    if (v === true) return el('span', { cls: 'badge b-valid', text: 'VALID' });
    if (v === false) return el('span', { cls: 'badge b-invalid', text: 'INVALID' });
    if (v === null || v === undefined) return el('span', { cls: 'badge b-skipped', text: 'SKIPPED' });
    return el('span', { cls: 'badge b-unknown', text: 'UNKNOWN' });
  }
  function opLink(view) {
    var ix = view && typeof view.index === 'number' ? view.index : -1;
    var p = ix >= 0 ? posOfIndex(ix) : -1;
    var text = (view && view.text) || (p >= 0 ? opText(p) : 'operation ' + ix);
    return el('a', { cls: 'op', 'data-index': String(ix), href: '#timeline', title: 'show in the timeline', onclick: function (e) { e.preventDefault(); if (p >= 0) focusOp(p); } }, [text]);
  }

  var app = document.getElementById('app');
  var witnessSet = {}; // op position -> 2 (cannot place) or 1 (related)

  // ---- header ----
  var counts = [0, 0, 0, 0];
  for (i = 0; i < n; i++) counts[outc[i]]++;
  var cfg = D.config || {};
  var desc = [];
  if (cfg.db) desc.push(cfg.db.db + (cfg.db.mode ? ' (' + cfg.db.mode + ')' : ''));
  if (cfg.nodes) desc.push(cfg.nodes + ' nodes');
  if (cfg.workload && cfg.workload.kind) desc.push(cfg.workload.kind + ' workload');
  if (cfg.concurrency) desc.push(cfg.concurrency + ' clients');
  if (cfg.time_limit) desc.push(cfg.time_limit + ' s');
  if (cfg.faults) desc.push(cfg.faults.length ? 'faults: ' + cfg.faults.join(', ') : 'no faults');
  if (D.model) desc.push('model ' + D.model);
  if (D.seed !== null && D.seed !== undefined) desc.push('seed ' + D.seed);
  app.appendChild(el('header', null, [
    el('h1', null, ['faultline report ', badge(D.valid)]),
    el('div', { cls: 'sub mono', text: D.name + (D.dir ? '  —  ' + D.dir : '') }),
    el('div', { cls: 'sub', text: desc.join(' · ') }),
    el('div', { cls: 'sub', text: n + ' operations: ' + counts[0] + ' ok, ' + counts[1] + ' fail, ' + counts[2] + ' info, ' + counts[3] + ' pending; ' + faults.length + ' fault interval' + (faults.length === 1 ? '' : 's') + '; ' + nProcs + ' client processes in ' + nLanes + ' lane' + (nLanes === 1 ? '' : 's') }),
    el('nav', null, [el('a', { href: '#checks', text: 'Checks' }), el('a', { href: '#classification', text: 'Classification' }), el('a', { href: '#timeline', text: 'Timeline' }), el('a', { href: '#plots', text: 'Latency & throughput' }), el('a', { href: '#linearization', text: 'Partial linearization' }), el('a', { href: '#faults', text: 'Faults' })])
  ]));

  // ---- checks ----
  var checks = D.checks || {};
  var sec = el('section', { id: 'checks' }, [el('h2', { text: 'Checks' })]);
  var tb = el('tbody');
  Object.keys(checks).forEach(function (name) {
    var c = checks[name] || {};
    var note = c.unknown_reason || c.skipped || '';
    var na = c.anomaly_count !== undefined ? c.anomaly_count : (c.anomalies || []).length;
    tb.appendChild(el('tr', { 'data-check': name }, [el('td', { cls: 'mono', text: name }), el('td', null, [badge(c.valid)]), el('td', { cls: 'num', text: String(na) }), el('td', { cls: 'small mono', text: (note ? note + ' ' : '') + (c.stats ? JSON.stringify(c.stats) : '') })]));
  });
  sec.appendChild(el('table', null, [el('thead', null, [el('tr', null, [el('th', { text: 'check' }), el('th', { text: 'verdict' }), el('th', { text: 'anomalies' }), el('th', { text: 'notes and stats' })])]), tb]));
  function collectOps(v, out, depth) {
    if (!v || typeof v !== 'object' || depth > 4) return;
    if (!Array.isArray(v) && typeof v.index === 'number' && typeof v.f === 'string') { out.push(v); return; }
    Object.keys(v).forEach(function (k) { if (k !== 'prefix') collectOps(v[k], out, depth + 1); });
  }
  Object.keys(checks).forEach(function (name) {
    var c = checks[name] || {};
    var more = null;
    (c.anomalies || []).forEach(function (a, ai) {
      var box = el('div', { cls: 'anomaly', 'data-anomaly': name + ':' + ai });
      box.appendChild(el('div', null, [el('b', { text: name + (a.type ? ' — ' + a.type : '') + (a.key !== undefined ? ' — key ' + fmtVal(typeof a.key === 'string' ? a.key : JSON.stringify(a.key)) : '') })]));
      if (a.op) {
        box.appendChild(el('div', null, ['Cannot place: ', opLink(a.op)]));
        var bp = posOfIndex(a.op.index); if (bp >= 0) witnessSet[bp] = 2;
      }
      if (a.explanation) box.appendChild(el('div', { text: a.explanation }));
      if (typeof a.svg === 'string') { var fig = el('div', { cls: 'cycle' }); fig.innerHTML = a.svg; box.appendChild(fig); }
      if (a.states) box.appendChild(el('div', { cls: 'small', text: 'States the object could be in just before it: ' + a.states.map(function (s) { return JSON.stringify(s); }).join(', ') + (a.more_states ? ', …' : '') }));
      var rel = [];
      if (a.concurrent) rel = a.concurrent; else collectOps(a, rel, 0);
      if (rel.length) {
        var ul = el('ul');
        rel.slice(0, 12).forEach(function (v) { ul.appendChild(el('li', null, [opLink(v)])); var p = posOfIndex(v.index); if (p >= 0 && !witnessSet[p]) witnessSet[p] = 1; });
        if (rel.length > 12) ul.appendChild(el('li', { text: '… and ' + (rel.length - 12) + ' more' }));
        box.appendChild(el('div', { cls: 'small', text: a.concurrent ? 'Concurrent with it:' : 'Operations involved:' }));
        box.appendChild(ul);
      }
      if (typeof a.prefix_len === 'number') {
        box.appendChild(el('div', { cls: 'small' }, ['Longest linearizable prefix: ' + a.prefix_len + ' operations — ', el('a', { href: '#plin-' + name + '-' + ai, text: 'see the partial linearization' })]));
      }
      if (ai === 0) sec.appendChild(box);
      else {
        if (!more) { more = el('details', { 'data-more': name }, [el('summary', { text: name + ': ' + ((c.anomalies || []).length - 1) + ' more witness' + ((c.anomalies || []).length === 2 ? '' : 'es') })]); sec.appendChild(more); }
        more.appendChild(box);
      }
    });
    if (c.anomaly_count > (c.anomalies || []).length) sec.appendChild(el('div', { cls: 'sub', text: name + ': ' + (c.anomaly_count - c.anomalies.length) + ' more anomalies in results.json' }));
  });
  app.appendChild(sec);

  // ---- classification ----
  var cl = D.classification;
  sec = el('section', { id: 'classification' }, [el('h2', { text: 'CAP/PACELC classification (measured from this run)' })]);
  if (cl && cl.label) {
    var pt = cl.partition || {}, nm = cl.normal || {};
    function pct(t) { return t && t.ops ? (100 * t.availability).toFixed(1) + '% (' + t.ok + ' of ' + t.ops + ')' : '—'; }
    function lat(p) { return p && p.n ? p.p50_ms + ' ms / ' + p.p99_ms + ' ms (' + p.n + ')' : '—'; }
    var side = function (s) { return (s && s.nodes && s.nodes.length) ? s.nodes.join(', ') : '—'; };
    var rows = [
      ['partitions', (pt.windows || 0) + ' (' + (pt.seconds || 0).toFixed(1) + ' s)'],
      ['majority side: nodes (any partition)', side(pt.majority)], ['majority side: reads ok', pct(pt.majority && pt.majority.read)], ['majority side: writes ok', pct(pt.majority && pt.majority.write)],
      ['minority side: nodes (any partition)', side(pt.minority)], ['minority side: reads ok', pct(pt.minority && pt.minority.read)], ['minority side: writes ok', pct(pt.minority && pt.minority.write)],
      ['no fault active', (nm.seconds || 0).toFixed(1) + ' s'], ['reads p50 / p99 (n)', lat(nm.read)], ['writes p50 / p99 (n)', lat(nm.write)],
      ['consistent with no fault active', String(nm.consistent) + ' — ' + (nm.consistency_basis || '')], ['consistency checks (whole run)', String(cl.valid)]
    ];
    var kv = el('tbody');
    rows.forEach(function (r) { kv.appendChild(el('tr', null, [el('td', { text: r[0] }), el('td', { text: r[1] })])); });
    var rl = el('ul');
    (cl.reasons || []).forEach(function (r) { rl.appendChild(el('li', { text: r })); });
    sec.appendChild(el('div', { cls: 'cls' }, [el('div', { cls: 'label', id: 'cls-label', text: cl.label }), el('div', { cls: 'reasons' }, [rl, el('table', { cls: 'kv' }, [kv]), el('p', { cls: 'small sub', text: 'Rule: ' + (cl.rule || '') })])]));
  } else {
    sec.appendChild(el('p', { cls: 'sub', text: 'No classification for this history.' }));
  }
  app.appendChild(sec);

  // ---- timeline and plots (one shared view) ----
  var view = { s: 0, e: endT };
  var selected = -1;
  sec = el('section', { id: 'timeline' }, [el('h2', { text: 'Timeline: client processes, one lane each (a retired process\'s successor takes its lane)' })]);
  var legend = el('div', { cls: 'legend' });
  ['ok', 'fail', 'info', 'pending'].forEach(function (k, j) { legend.appendChild(el('span', null, [el('i', { style: 'background:' + COLORS[j] }), k])); });
  Object.keys(FAULT_COLORS).forEach(function (k) { if (faults.some(function (f) { return f.f === k; })) legend.appendChild(el('span', null, [el('i', { style: 'background:' + FAULT_COLORS[k] + ';border:1px solid ' + FAULT_EDGE[k] }), k])); });
  legend.appendChild(el('span', null, [el('i', { style: 'background:#fff;border:2px solid #000' }), 'witness']));
  var info = el('span', { cls: 'sub small', id: 'view-info' });
  sec.appendChild(el('div', { cls: 'toolbar' }, [
    el('button', { text: 'Zoom in', onclick: function () { zoomAt(0.5, 0.5); } }),
    el('button', { text: 'Zoom out', onclick: function () { zoomAt(0.5, 2); } }),
    el('button', { text: 'Whole run', onclick: function () { setView(0, endT); } }),
    el('button', { text: 'Witness', onclick: function () { var k = Object.keys(witnessSet).filter(function (p) { return witnessSet[p] === 2; }); if (k.length) focusOp(+k[0]); } }),
    legend, info]));
  sec.appendChild(el('div', { cls: 'sub small', text: 'Wheel: zoom at the pointer · drag: pan · double-click: whole run · click a bar: details. The plots below follow the same view.' }));
  var tlCanvas = el('canvas', { id: 'timeline-canvas' });
  sec.appendChild(el('div', { cls: 'canvas-wrap' }, [tlCanvas]));
  var details = el('div', { id: 'details', cls: 'mono small' });
  sec.appendChild(details);
  app.appendChild(sec);

  var latCanvas = el('canvas', { id: 'latency-canvas' });
  var thrCanvas = el('canvas', { id: 'throughput-canvas' });
  app.appendChild(el('section', { id: 'plots' }, [
    el('h2', { text: 'Latency over time' }),
    el('div', { cls: 'sub small', text: 'Each point an operation (invocation time, latency on a log scale, coloured by outcome); lines: p50, p95 and p99 of ok operations per time bucket. Fault intervals shaded.' }),
    el('div', { cls: 'canvas-wrap' }, [latCanvas]),
    el('h2', { text: 'Throughput over time', style: 'margin-top:14px' }),
    el('div', { cls: 'sub small', text: 'Completions per second by outcome, per time bucket. Fault intervals shaded.' }),
    el('div', { cls: 'canvas-wrap' }, [thrCanvas])]));

  var tip = el('div', { id: 'tip' });
  document.body.appendChild(tip);

  var LANE_H = Math.max(2, Math.min(16, Math.floor(560 / nLanes)));
  var AXIS_H = 22, LEFT = 64;
  var TL_H = nLanes * LANE_H + AXIS_H + 18;
  var DPR = Math.min(2, window.devicePixelRatio || 1);
  function setup(c, h) {
    var w = Math.max(300, c.parentNode.clientWidth || 1000);
    c.width = Math.round(w * DPR); c.height = Math.round(h * DPR);
    c.style.height = h + 'px';
    var g = c.getContext('2d');
    g.setTransform(DPR, 0, 0, DPR, 0, 0);
    return { g: g, w: w, h: h };
  }
  function firstVisible(s) {
    var target = s - maxDur, lo = 0, hi = n;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (t0[mid] < target) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function niceStep(span, px) {
    var raw = span / Math.max(1, px / 110), p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
  }
  function axis(g, w, y, top, bottom) {
    var span = view.e - view.s, step = niceStep(span, w - LEFT), sx = (w - LEFT) / span;
    g.fillStyle = '#5f6b7a'; g.strokeStyle = '#e6e9ee'; g.font = '11px system-ui, sans-serif'; g.textAlign = 'center';
    for (var t = Math.ceil(view.s / step) * step; t <= view.e; t += step) {
      var x = LEFT + (t - view.s) * sx;
      g.beginPath(); g.moveTo(x + 0.5, top); g.lineTo(x + 0.5, bottom); g.stroke();
      g.fillText(step >= 1e6 ? (t / 1e6).toFixed(step >= 1e7 ? 0 : 1) + ' s' : step >= 1000 ? (t / 1000).toFixed(step >= 1e4 ? 0 : 1) + ' ms' : Math.round(t) + ' µs', x, y);
    }
    g.textAlign = 'left';
  }
  var bandsDrawn = 0;
  function shadeFaults(g, w, top, bottom, labels) {
    var sx = (w - LEFT) / (view.e - view.s), drawn = 0;
    faults.forEach(function (f) {
      if (f.e < view.s || f.s > view.e) return;
      var x0 = LEFT + Math.max(0, (f.s - view.s) * sx), x1 = LEFT + Math.min(w - LEFT, (f.e - view.s) * sx);
      g.fillStyle = FAULT_COLORS[f.f] || 'rgba(100,100,100,0.12)';
      g.fillRect(x0, top, Math.max(2, x1 - x0), bottom - top);
      g.fillStyle = FAULT_EDGE[f.f] || '#666';
      g.fillRect(x0, top, 1, bottom - top);
      if (labels && x1 - x0 > 30) { g.font = '11px system-ui, sans-serif'; g.fillText(f.f, x0 + 4, top + 11); }
      drawn++;
    });
    return drawn;
  }

  var drawnOps = 0;
  function drawTimeline() {
    var c = setup(tlCanvas, TL_H), g = c.g, w = c.w;
    g.clearRect(0, 0, w, TL_H);
    var top = 16, bottom = top + nLanes * LANE_H;
    bandsDrawn = shadeFaults(g, w, 0, bottom, true);
    g.fillStyle = '#5f6b7a'; g.font = '10px system-ui, sans-serif';
    var every = Math.ceil(12 / LANE_H);
    for (var l = 0; l < nLanes; l += every) { var lp = LANES[l] || []; g.fillText('p' + lp[0] + (lp.length > 1 ? ' +' + (lp.length - 1) : ''), 4, top + l * LANE_H + Math.min(LANE_H, 11)); }
    var span = view.e - view.s, sx = (w - LEFT) / span, barH = Math.max(1, LANE_H - (LANE_H > 4 ? 2 : 0));
    // Bars narrower than a pixel are counted per (lane, pixel, outcome) and
    // drawn as one column split in proportion to the outcomes.
    var PW = Math.ceil(w - LEFT) + 1, agg = new Uint32Array(nLanes * PW * 4), cur = -1, count = 0;
    for (var p = firstVisible(view.s); p < n && t0[p] <= view.e; p++) {
      if (t1[p] < view.s) continue;
      var x0 = (t0[p] - view.s) * sx, x1 = (t1[p] - view.s) * sx, o = outc[p], y = top + lane[p] * LANE_H;
      if (x0 < 0) x0 = 0; if (x1 > w - LEFT) x1 = w - LEFT;
      if (o !== cur) { g.fillStyle = COLORS[o]; cur = o; }
      if (x1 - x0 < 1) {
        agg[(lane[p] * PW + Math.floor(x0)) * 4 + o]++;
      } else {
        g.fillRect(LEFT + x0, y, Math.max(1, x1 - x0 - (x1 - x0 > 3 ? 1 : 0)), barH);
      }
      count++;
    }
    for (var al = 0; al < nLanes; al++) {
      var ay = top + al * LANE_H;
      for (var ax = 0; ax < PW; ax++) {
        var base = (al * PW + ax) * 4, tot = agg[base] + agg[base + 1] + agg[base + 2] + agg[base + 3];
        if (!tot) continue;
        var yy = ay;
        for (var ao = 0; ao < 4; ao++) {
          var c0 = agg[base + ao]; if (!c0) continue;
          var hh = ao === 3 || yy + c0 / tot * barH > ay + barH ? ay + barH - yy : Math.max(1, c0 / tot * barH);
          if (hh <= 0) { hh = 1; yy = ay + barH - 1; }
          if (ao !== cur) { g.fillStyle = COLORS[ao]; cur = ao; }
          g.fillRect(LEFT + ax, yy, 1, hh);
          yy += hh;
        }
      }
    }
    drawnOps = count;
    // The witness on top, visible at any zoom.
    g.lineWidth = 2;
    Object.keys(witnessSet).forEach(function (k) {
      var p = +k; if (t1[p] < view.s || t0[p] > view.e) return;
      var x0 = LEFT + Math.max(0, (t0[p] - view.s) * sx), x1 = LEFT + Math.min(w - LEFT, (t1[p] - view.s) * sx), y = top + lane[p] * LANE_H;
      g.strokeStyle = witnessSet[p] === 2 ? '#000' : '#7a3b00';
      g.strokeRect(x0 - 1, y - 1, Math.max(3, x1 - x0) + 2, barH + 2);
      if (witnessSet[p] === 2) { g.fillStyle = '#000'; g.beginPath(); g.moveTo(x0 - 5, 2); g.lineTo(x0 + 5, 2); g.lineTo(x0, 12); g.fill(); }
    });
    if (selected >= 0 && t1[selected] >= view.s && t0[selected] <= view.e) {
      var sx0 = LEFT + Math.max(0, (t0[selected] - view.s) * sx), sx1 = LEFT + Math.min(w - LEFT, (t1[selected] - view.s) * sx);
      g.strokeStyle = '#1f5fbf'; g.strokeRect(sx0 - 2, top + lane[selected] * LANE_H - 2, Math.max(3, sx1 - sx0) + 4, barH + 4);
    }
    g.lineWidth = 1;
    axis(g, w, bottom + 14, top, bottom);
    info.textContent = 'view ' + fmtMs(view.s) + ' – ' + fmtMs(view.e) + ' · ' + count + ' bars drawn';
  }

  var LAT_H = 260, THR_H = 200;
  function drawLatency() {
    var c = setup(latCanvas, LAT_H), g = c.g, w = c.w, top = 6, bottom = LAT_H - 22, ph = bottom - top;
    g.clearRect(0, 0, w, LAT_H);
    shadeFaults(g, w, top, bottom, false);
    var lo = Infinity, hi = 0, p;
    var pStart = firstVisible(view.s);
    for (p = pStart; p < n && t0[p] <= view.e; p++) {
      if (outc[p] === 3 || t0[p] < view.s) continue;
      var dd = t1[p] - t0[p]; if (dd < 1) dd = 1;
      if (dd < lo) lo = dd; if (dd > hi) hi = dd;
    }
    if (!(hi > 0)) { lo = 1; hi = 1e6; }
    var llo = Math.floor(Math.log10(lo)), lhi = Math.max(llo + 1, Math.ceil(Math.log10(hi)));
    var yOf = function (us) { return bottom - (Math.log10(Math.max(1, us)) - llo) / (lhi - llo) * ph; };
    g.fillStyle = '#5f6b7a'; g.strokeStyle = '#e6e9ee'; g.font = '11px system-ui, sans-serif';
    for (var e = llo; e <= lhi; e++) { var yy = yOf(Math.pow(10, e)); g.beginPath(); g.moveTo(LEFT, yy + 0.5); g.lineTo(w, yy + 0.5); g.stroke(); g.fillText(fmtDur(Math.pow(10, e)), 4, yy + 4); }
    var sx = (w - LEFT) / (view.e - view.s);
    var W = Math.ceil(w), H = Math.ceil(LAT_H), seen = new Uint8Array(W * H);
    var nb = Math.max(10, Math.floor((w - LEFT) / 6)), bins = 48, hist = new Uint32Array(nb * bins), cnt = new Uint32Array(nb);
    var cur = -1;
    for (p = pStart; p < n && t0[p] <= view.e; p++) {
      var o = outc[p]; if (o === 3 || t0[p] < view.s) continue;
      var du = Math.max(1, t1[p] - t0[p]), x = Math.floor(LEFT + (t0[p] - view.s) * sx), y = Math.floor(yOf(du));
      var bit = 1 << o, cell = y * W + x;
      if (!(seen[cell] & bit)) { seen[cell] |= bit; if (o !== cur) { g.fillStyle = COLORS[o]; cur = o; } g.globalAlpha = 0.55; g.fillRect(x, y, 2, 2); }
      if (o === 0) {
        var b = Math.min(nb - 1, Math.floor((t0[p] - view.s) / (view.e - view.s) * nb)), hb = Math.min(bins - 1, Math.max(0, Math.floor((Math.log10(du) - llo) / (lhi - llo) * bins)));
        hist[b * bins + hb]++; cnt[b]++;
      }
    }
    g.globalAlpha = 1;
    [[0.5, '#1d2330'], [0.95, '#7c4dff'], [0.99, '#d64541']].forEach(function (q) {
      g.strokeStyle = q[1]; g.lineWidth = 1.5; g.beginPath(); var started = false;
      for (var b = 0; b < nb; b++) {
        if (!cnt[b]) { started = false; continue; }
        var need = Math.ceil(cnt[b] * q[0]), accb = 0, hb = 0;
        for (; hb < bins; hb++) { accb += hist[b * bins + hb]; if (accb >= need) break; }
        var yq = bottom - (hb + 0.5) / bins * ph, xq = LEFT + (b + 0.5) / nb * (w - LEFT);
        if (started) g.lineTo(xq, yq); else { g.moveTo(xq, yq); started = true; }
      }
      g.stroke();
    });
    g.lineWidth = 1;
    g.font = '11px system-ui, sans-serif'; g.fillStyle = '#1d2330'; g.fillText('p50', w - 90, 14); g.fillStyle = '#7c4dff'; g.fillText('p95', w - 62, 14); g.fillStyle = '#d64541'; g.fillText('p99', w - 34, 14);
    axis(g, w, LAT_H - 6, top, bottom);
  }

  function drawThroughput() {
    var c = setup(thrCanvas, THR_H), g = c.g, w = c.w, top = 6, bottom = THR_H - 22, ph = bottom - top;
    g.clearRect(0, 0, w, THR_H);
    shadeFaults(g, w, top, bottom, false);
    var nb = Math.max(10, Math.min(400, Math.floor((w - LEFT) / 5))), span = view.e - view.s, bw = span / nb;
    var cnt = [new Float64Array(nb), new Float64Array(nb), new Float64Array(nb)];
    var p = firstVisible(view.s), lim = view.e + maxDur;
    for (; p < n && t0[p] <= lim; p++) {
      var o = outc[p]; if (o === 3 || t1[p] < view.s || t1[p] > view.e) continue;
      var b = Math.min(nb - 1, Math.floor((t1[p] - view.s) / bw)); cnt[o][b]++;
    }
    var max = 1;
    cnt.forEach(function (a) { for (var b = 0; b < nb; b++) { a[b] = a[b] / (bw / 1e6); if (a[b] > max) max = a[b]; } });
    var step = niceStep(max, ph * 1.3);
    g.fillStyle = '#5f6b7a'; g.strokeStyle = '#e6e9ee'; g.font = '11px system-ui, sans-serif';
    for (var v = 0; v <= max; v += step) { var yy = bottom - v / max * ph; g.beginPath(); g.moveTo(LEFT, yy + 0.5); g.lineTo(w, yy + 0.5); g.stroke(); g.fillText(v >= 1000 ? (v / 1000) + 'k/s' : v + '/s', 4, yy + 4); }
    [0, 1, 2].forEach(function (o) {
      g.strokeStyle = COLORS[o]; g.lineWidth = 1.5; g.beginPath();
      for (var b = 0; b < nb; b++) { var x = LEFT + (b + 0.5) / nb * (w - LEFT), y = bottom - cnt[o][b] / max * ph; if (b) g.lineTo(x, y); else g.moveTo(x, y); }
      g.stroke();
    });
    g.lineWidth = 1;
    axis(g, w, THR_H - 6, top, bottom);
  }

  var pending = false;
  function redraw() { drawTimeline(); drawLatency(); drawThroughput(); }
  function schedule() { if (pending) return; pending = true; requestAnimationFrame(function () { pending = false; try { redraw(); } catch (e) { noteError(e && e.message); } }); }
  function setView(s, e) {
    var minSpan = 20;
    if (e - s < minSpan) { var m = (s + e) / 2; s = m - minSpan / 2; e = m + minSpan / 2; }
    var span = e - s, full = endT;
    if (span > full) { s = 0; e = full; } else { if (s < 0) { e -= s; s = 0; } if (e > full) { s -= e - full; e = full; } }
    view.s = s; view.e = e; schedule();
  }
  function zoomAt(frac, factor) { var span = view.e - view.s, t = view.s + frac * span; setView(t - frac * span * factor, t + (1 - frac) * span * factor); }
  function focusOp(p) {
    selected = p;
    var span = Math.max((t1[p] - t0[p]) * 12, 2000);
    setView(t0[p] - span / 2, t0[p] + span / 2);
    details.textContent = opDetail(p);
    tlCanvas.scrollIntoView({ block: 'center' });
  }
  function hit(c, ev) {
    var r = c.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top, w: r.width };
  }
  function opAt(x, y, w) {
    var l = Math.floor((y - 16) / LANE_H);
    if (l < 0 || l >= nLanes || x < LEFT) return -1;
    var sx = (w - LEFT) / (view.e - view.s), t = view.s + (x - LEFT) / sx, tol = 3 / sx, best = -1, bestD = Infinity;
    var lim = t + tol;
    for (var p = firstVisible(t - tol); p < n && t0[p] <= lim; p++) {
      if (lane[p] !== l) continue;
      var dd = t < t0[p] ? t0[p] - t : t > t1[p] ? t - t1[p] : 0;
      if (dd <= tol && dd < bestD) { best = p; bestD = dd; if (dd === 0) break; }
    }
    return best;
  }
  [tlCanvas, latCanvas, thrCanvas].forEach(function (c) {
    var drag = null;
    c.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var h = hit(c, ev), frac = Math.max(0, Math.min(1, (h.x - LEFT) / (h.w - LEFT)));
      zoomAt(frac, ev.deltaY < 0 ? 0.8 : 1.25);
    }, { passive: false });
    c.addEventListener('mousedown', function (ev) { drag = { x: ev.clientX, s: view.s, e: view.e, moved: false }; c.classList.add('dragging'); });
    window.addEventListener('mouseup', function (ev) {
      if (!drag) return;
      var d = drag; drag = null; c.classList.remove('dragging');
      if (!d.moved && c === tlCanvas) { var h = hit(c, ev), p = opAt(h.x, h.y, h.w); if (p >= 0) { selected = p; details.textContent = opDetail(p); schedule(); } }
    });
    window.addEventListener('mousemove', function (ev) {
      if (drag) {
        var dx = ev.clientX - drag.x; if (Math.abs(dx) > 2) drag.moved = true;
        var h = hit(c, ev), span = drag.e - drag.s, dt = dx / (h.w - LEFT) * span;
        setView(drag.s - dt, drag.e - dt);
      }
    });
    c.addEventListener('dblclick', function () { setView(0, endT); });
  });
  tlCanvas.addEventListener('mousemove', function (ev) {
    var h = hit(tlCanvas, ev), p = opAt(h.x, h.y, h.w);
    if (p < 0) { tip.style.display = 'none'; return; }
    tip.textContent = opDetail(p); tip.style.display = 'block';
    tip.style.left = Math.min(window.innerWidth - 300, ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px';
  });
  tlCanvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  window.addEventListener('resize', schedule);

  // ---- partial linearization ----
  sec = el('section', { id: 'linearization' }, [el('h2', { text: 'Partial linearization' })]);
  var anyLin = false;
  Object.keys(checks).forEach(function (name) {
    (checks[name].anomalies || []).forEach(function (a, ai) {
      if (typeof a.prefix_len !== 'number' || !a.op) return;
      anyLin = true;
      var box = el('div', { id: 'plin-' + name + '-' + ai });
      var prefix = a.prefix || [], conc = (a.concurrent || []).filter(function (c) { return !prefix.some(function (q) { return q.index === c.index; }); });
      box.appendChild(el('h3', { text: 'Key ' + (a.key === undefined ? '(single object)' : (typeof a.key === 'string' ? a.key : JSON.stringify(a.key))) + ': ' + a.prefix_len + ' operations could be ordered; then ' + a.op.text + ' cannot be placed' }));
      box.appendChild(el('div', { cls: 'small sub', text: (a.prefix_len > prefix.length ? 'The first ' + (a.prefix_len - prefix.length) + ' operations of the order are not shown; ' : '') + 'rows 1–' + prefix.length + ' are the end of the longest order found (green), in that order; orange rows are concurrent with the operation that breaks it (red). After them the object could only be ' + (a.states || []).map(function (s) { return JSON.stringify(s); }).join(' or ') + '.' }));
      var rows = [];
      prefix.forEach(function (v, j) { rows.push({ v: v, kind: 'prefix', label: '#' + (a.prefix_len - prefix.length + j + 1) }); });
      conc.forEach(function (v) { rows.push({ v: v, kind: 'conc', label: 'conc' }); });
      rows.push({ v: a.op, kind: 'bad', label: 'BREAKS' });
      var lo = Infinity, hi = -Infinity;
      rows.forEach(function (r) { r.p = posOfIndex(r.v.index); if (r.p >= 0) { lo = Math.min(lo, t0[r.p]); hi = Math.max(hi, t1[r.p]); } });
      if (!(hi > lo)) { lo = 0; hi = 1; }
      var RH = 16, LW = 520, W = 1100, svgNS = 'http://www.w3.org/2000/svg';
      var svg = document.createElementNS(svgNS, 'svg');
      svg.setAttribute('viewBox', '0 0 ' + W + ' ' + (rows.length * RH + 8)); svg.setAttribute('width', '100%'); svg.setAttribute('class', 'plin');
      var bp = posOfIndex(a.op.index);
      if (bp >= 0) {
        var bx = LW + (t0[bp] - lo) / (hi - lo) * (W - LW - 10);
        var ln = document.createElementNS(svgNS, 'line');
        ln.setAttribute('x1', bx); ln.setAttribute('x2', bx); ln.setAttribute('y1', 0); ln.setAttribute('y2', rows.length * RH + 8); ln.setAttribute('stroke', '#d64541'); ln.setAttribute('stroke-dasharray', '4 3');
        svg.appendChild(ln);
      }
      rows.forEach(function (r, j) {
        var gr = document.createElementNS(svgNS, 'g'); gr.setAttribute('class', 'plin-row');
        var tx = document.createElementNS(svgNS, 'text'); tx.setAttribute('x', 2); tx.setAttribute('y', j * RH + 12);
        tx.textContent = r.label + '  ' + r.v.text; if (r.kind === 'bad') tx.setAttribute('font-weight', '700');
        gr.appendChild(tx);
        if (r.p >= 0) {
          var x0 = LW + (t0[r.p] - lo) / (hi - lo) * (W - LW - 10), x1 = LW + (t1[r.p] - lo) / (hi - lo) * (W - LW - 10);
          var rc = document.createElementNS(svgNS, 'rect');
          rc.setAttribute('x', x0); rc.setAttribute('y', j * RH + 3); rc.setAttribute('width', Math.max(2, x1 - x0)); rc.setAttribute('height', RH - 5);
          rc.setAttribute('fill', r.kind === 'bad' ? '#d64541' : r.kind === 'conc' ? '#f0a030' : '#2e9e5b');
          gr.appendChild(rc);
          gr.style.cursor = 'pointer';
          gr.addEventListener('click', (function (pp) { return function () { focusOp(pp); }; })(r.p));
        }
        svg.appendChild(gr);
      });
      box.appendChild(svg);
      sec.appendChild(box);
    });
  });
  if (!anyLin) sec.appendChild(el('p', { cls: 'sub', text: 'No linearizability violation: nothing to show.' }));
  app.appendChild(sec);

  // ---- faults ----
  sec = el('section', { id: 'faults' }, [el('h2', { text: 'Fault intervals' })]);
  if (faults.length) {
    var ft = el('tbody');
    faults.forEach(function (f, j) {
      ft.appendChild(el('tr', { 'data-fault': f.f }, [el('td', { text: String(j + 1) }), el('td', { cls: 'mono', text: f.f }), el('td', { cls: 'num', text: fmtMs(f.s) }), el('td', { cls: 'num', text: fmtMs(f.e) }), el('td', { cls: 'mono small', text: JSON.stringify(f.value) }),
        el('td', null, [el('a', { href: '#timeline', text: 'show', onclick: function (e) { e.preventDefault(); var pad = (f.e - f.s) * 0.2 + 1000; setView(f.s - pad, f.e + pad); tlCanvas.scrollIntoView({ block: 'center' }); } })])]));
    });
    sec.appendChild(el('table', null, [el('thead', null, [el('tr', null, ['#', 'fault', 'start', 'end', 'value (grudge: node → nodes it drops)', ''].map(function (h) { return el('th', { text: h }); }))]), ft]));
  } else sec.appendChild(el('p', { cls: 'sub', text: 'No faults in this history.' }));
  app.appendChild(sec);
  ['checks', 'timeline', 'plots', 'classification', 'linearization', 'faults'].forEach(function (id) { var s = document.getElementById(id); if (s) app.appendChild(s); });
  app.appendChild(el('p', { cls: 'sub small', text: 'faultline ' + D.version + ' · self-contained report: the data is embedded in this file.' }));

  // ---- first render, synchronously, then tell the tests ----
  try { redraw(); } catch (e) { noteError(e && e.message); }
  var b = document.body;
  b.setAttribute('data-ops', String(n));
  b.setAttribute('data-faults', String(faults.length));
  b.setAttribute('data-lanes', String(nLanes));
  b.setAttribute('data-drawn-ops', String(drawnOps));
  b.setAttribute('data-fault-bands', String(bandsDrawn));
  b.setAttribute('data-witness-ops', String(Object.keys(witnessSet).length));
  b.setAttribute('data-render-ms', String(Math.round(performance.now())));
  b.setAttribute('data-rendered', '1');

  // `report.html#selftest` drives the interactions once (zoom, pan, hover,
  // click, the witness and fault links) for the headless tests.
  if (location.hash === '#selftest') {
    try {
      var fire = function (target, type, x, y, extra) {
        var r = (target.getBoundingClientRect ? target : tlCanvas).getBoundingClientRect(), init = { clientX: r.left + x, clientY: r.top + y, bubbles: true, cancelable: true, deltaY: extra || 0 };
        target.dispatchEvent(type === 'wheel' ? new WheelEvent(type, init) : new MouseEvent(type, init));
      };
      var steps = 0;
      [tlCanvas, latCanvas, thrCanvas].forEach(function (c) {
        fire(c, 'wheel', 400, 40, -100); redraw();
        fire(c, 'mousedown', 300, 30); fire(window, 'mousemove', 200, 30); fire(window, 'mouseup', 200, 30); redraw();
        fire(c, 'dblclick', 300, 30); redraw();
        steps++;
      });
      fire(tlCanvas, 'mousemove', LEFT + 50, 16 + LANE_H / 2); fire(tlCanvas, 'mousedown', LEFT + 50, 16 + LANE_H / 2); fire(window, 'mouseup', LEFT + 50, 16 + LANE_H / 2);
      zoomAt(0.5, 0.01); redraw(); zoomAt(0.5, 1000); redraw();
      Array.prototype.forEach.call(document.querySelectorAll('a.op'), function (a, j) { if (j < 5) { a.click(); redraw(); steps++; } });
      Array.prototype.forEach.call(document.querySelectorAll('#faults a'), function (a, j) { if (j < 3) { a.click(); redraw(); steps++; } });
      Array.prototype.forEach.call(document.querySelectorAll('.plin-row'), function (g, j) { if (j < 3) { g.dispatchEvent(new MouseEvent('click', { bubbles: true })); redraw(); steps++; } });
      b.setAttribute('data-selftest', errors.length ? 'errors' : 'ok');
      b.setAttribute('data-selftest-steps', String(steps));
    } catch (e) { noteError('selftest: ' + (e && e.message)); b.setAttribute('data-selftest', 'threw'); }
  }
})();
