// qkd-dash page: polls /api/state and /api/history once a second and draws with plain SVG.
// Everything it shows comes from those documents (docs/dashboard.md); data is only ever put
// into the page as text or attributes, never as markup.
'use strict';

const NS = 'http://www.w3.org/2000/svg';
const HIST = 300; // samples kept, as the daemon does
const POLL_MS = 1000;
const hist = { t: [], links: {}, kmes: {} };
let models = {};
let built = false;
const ui = { links: {}, kmes: {}, nodes: {}, edges: {} };

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function sv(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmtRate(bps) {
  if (bps === null || bps === undefined || bps < 0) return '?';
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + ' Mbit/s';
  if (bps >= 1e3) return (bps / 1e3).toFixed(1) + ' kbit/s';
  return bps.toFixed(0) + ' bit/s';
}
function fmtBits(b) {
  if (b === null || b === undefined || b < 0) return '?';
  if (b >= 8e6) return (b / 8e6).toFixed(2) + ' MB';
  if (b >= 8e3) return (b / 8e3).toFixed(1) + ' kB';
  return (b / 8).toFixed(0) + ' B';
}
function fmtPct(q) { return (q * 100).toFixed(2) + ' %'; }
function num(x) { return x === null || x === undefined ? NaN : x; }

async function getJSON(url, opts) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 3000); // bounded: never a request left hanging
  try {
    const r = await fetch(url, Object.assign({ signal: ctl.signal, cache: 'no-store' }, opts || {}));
    const body = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, body: body };
  } finally {
    clearTimeout(timer);
  }
}

// ---- topology ---------------------------------------------------------------------------------

function layout(kmes) {
  const n = kmes.length, pos = {};
  const cx = 320, cy = n <= 2 ? 90 : 180, rx = n <= 2 ? 210 : 230, ry = n <= 2 ? 0 : 130;
  kmes.forEach((k, i) => {
    const a = n <= 2 ? Math.PI * (1 - i) : -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos[k.id] = { x: cx + rx * Math.cos(a), y: cy + ry * Math.sin(a) };
  });
  return pos;
}

function buildTopology(st) {
  const svg = document.getElementById('topology');
  svg.textContent = '';
  svg.setAttribute('viewBox', st.kmes.length <= 2 ? '0 0 640 180' : '0 0 640 360');
  const pos = layout(st.kmes);
  const gEdges = sv('g'), gNodes = sv('g');
  svg.appendChild(gEdges);
  svg.appendChild(gNodes);
  for (const l of st.links) {
    const a = pos[l.kmes[0]], b = pos[l.kmes[1]];
    const g = sv('g', { class: 'edge', 'data-link': l.id });
    g.appendChild(sv('title', {}, l.id));
    g.appendChild(sv('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }));
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
    const t1 = sv('text', { x: mx, y: my - 8, 'text-anchor': 'middle', class: 'edge-rate' });
    const t2 = sv('text', { x: mx, y: my + 16, 'text-anchor': 'middle', class: 'edge-qber' });
    g.appendChild(t1);
    g.appendChild(t2);
    gEdges.appendChild(g);
    ui.edges[l.id] = { g: g, rate: t1, qber: t2 };
  }
  for (const k of st.kmes) {
    const p = pos[k.id];
    const g = sv('g', { class: 'node', 'data-kme': k.id, transform: `translate(${p.x},${p.y})` });
    g.appendChild(sv('circle', { r: 34 }));
    g.appendChild(sv('text', { y: 4, class: 'node-id' }, k.id));
    const sub = sv('text', { y: 50, class: 'sub' });
    g.appendChild(sub);
    gNodes.appendChild(g);
    ui.nodes[k.id] = { g: g, sub: sub };
  }
}

function updateTopology(st) {
  for (const l of st.links) {
    const e = ui.edges[l.id];
    if (!e) continue;
    e.g.setAttribute('class', 'edge ' + l.state);
    e.g.setAttribute('data-state', l.state);
    e.rate.textContent = fmtRate(l.rate_bps);
    e.qber.textContent = 'QBER ' + fmtPct(l.qber);
  }
  for (const k of st.kmes) {
    const n = ui.nodes[k.id];
    if (!n) continue;
    n.g.setAttribute('class', 'node' + (k.reachable ? '' : ' unreachable'));
    const rps = k.requests.reduce((s, a) => s + a.rate, 0);
    n.sub.textContent = k.reachable ? rps.toFixed(1) + ' req/s' : 'unreachable';
  }
}

// ---- charts -----------------------------------------------------------------------------------

// A line chart of series [{v: [...], cls/colour}] against times t (ms), over the last HIST s.
function drawChart(svg, t, series, opts) {
  const W = 300, H = 130, L = 58, R = 6, T = 8, B = 18;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.textContent = '';
  const now = t.length ? t[t.length - 1] : Date.now(), t0 = now - HIST * 1000;
  let ymax = opts.ymin || 0;
  for (const s of series) for (const v of s.v) if (v > ymax && isFinite(v)) ymax = v;
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  const x = (tt) => L + ((tt - t0) / (now - t0)) * (W - L - R);
  const y = (v) => H - B - (v / ymax) * (H - T - B);
  for (let i = 0; i <= 2; i++) {
    const yy = T + (i * (H - T - B)) / 2;
    svg.appendChild(sv('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid' }));
    svg.appendChild(sv('text', { x: L - 3, y: yy + 3, 'text-anchor': 'end' }, opts.fmt(ymax * (1 - i / 2))));
  }
  svg.appendChild(sv('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  svg.appendChild(sv('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  svg.appendChild(sv('text', { x: L, y: H - 4 }, '-5 min'));
  svg.appendChild(sv('text', { x: W - R, y: H - 4, 'text-anchor': 'end' }, 'now'));
  for (const s of series) {
    let pts = '';
    for (let i = 0; i < t.length; i++) {
      const v = s.v[i];
      if (v === null || v === undefined || v < 0 || !isFinite(v) || t[i] < t0) continue;
      pts += x(t[i]).toFixed(1) + ',' + y(v).toFixed(1) + ' ';
    }
    svg.appendChild(sv('polyline', s.dash ? { points: pts, stroke: s.colour, 'stroke-dasharray': s.dash } : { points: pts, stroke: s.colour }));
  }
}

// Rate against distance on a log scale, with the link's operating point.
function drawModel(svg, link) {
  const W = 300, H = 130, L = 58, R = 6, T = 8, B = 18;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.textContent = '';
  const m = models[link.preset];
  if (!m || !m.points.length) {
    svg.appendChild(sv('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no model curve'));
    return;
  }
  const dmax = Math.max(20, Math.min(200, Math.max(m.max_distance_km * 1.1, link.distance_km * 1.2)));
  const pts = m.points.filter((p) => p[0] <= dmax && p[1] > 0);
  let rmax = 1, rmin = Infinity;
  for (const p of pts) { rmax = Math.max(rmax, p[1]); rmin = Math.min(rmin, p[1]); }
  const lmax = Math.ceil(Math.log10(rmax)), lmin = Math.max(lmax - 6, Math.floor(Math.log10(Math.max(rmin, 1e-3))));
  const x = (d) => L + (d / dmax) * (W - L - R);
  const y = (r) => H - B - ((Math.log10(Math.max(r, Math.pow(10, lmin))) - lmin) / (lmax - lmin)) * (H - T - B);
  for (let e = lmin; e <= lmax; e++) {
    svg.appendChild(sv('line', { x1: L, x2: W - R, y1: y(Math.pow(10, e)), y2: y(Math.pow(10, e)), class: 'grid' }));
    svg.appendChild(sv('text', { x: L - 3, y: y(Math.pow(10, e)) + 3, 'text-anchor': 'end' }, '1e' + e));
  }
  svg.appendChild(sv('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  svg.appendChild(sv('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  svg.appendChild(sv('text', { x: L, y: H - 4 }, '0 km'));
  svg.appendChild(sv('text', { x: W - R, y: H - 4, 'text-anchor': 'end' }, dmax.toFixed(0) + ' km'));
  svg.appendChild(sv('polyline', { points: pts.map((p) => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' '), stroke: '#1f77b4' }));
  const r = link.model_rate_bps;
  svg.appendChild(sv('circle', { cx: x(link.distance_km), cy: r > 0 ? y(r) : H - B, r: 4.5,
    fill: r > 0 ? '#1b9e4b' : '#d32f2f', class: 'operating-point' }));
}

// ---- link cards -------------------------------------------------------------------------------

function chartBox(title) {
  const box = el('div', { class: 'chart' });
  box.appendChild(el('div', { class: 'title' }, title));
  const svg = sv('svg');
  box.appendChild(svg);
  return { box: box, svg: svg };
}

async function setFault(linkId, fault, value, msg) {
  msg.textContent = '';
  const body = { fault: fault };
  if (value !== undefined) body.value = String(value);
  try {
    const r = await getJSON('/api/links/' + encodeURIComponent(linkId) + '/fault', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    if (!r.ok) msg.textContent = (r.body && r.body.message) || 'error ' + r.status;
  } catch (e) {
    msg.textContent = 'no answer';
  }
  tick(true);
}

function button(label, linkId, fault, value, msg, valueFrom) {
  const b = el('button', { type: 'button', 'data-link': linkId, 'data-fault': fault }, label);
  b.addEventListener('click', () => setFault(linkId, fault, valueFrom ? valueFrom() : value, msg));
  return b;
}

function buildLink(l) {
  const card = el('div', { class: 'panel link-card', 'data-link': l.id });
  const head = el('div', { class: 'head' });
  head.appendChild(el('h3', {}, l.id));
  const badge = el('span', { class: 'badge state' }, l.state);
  head.appendChild(badge);
  const nums = el('span', { class: 'nums' });
  head.appendChild(nums);
  card.appendChild(head);

  const c = el('div', { class: 'controls' });
  const msg = el('span', { class: 'msg' });
  c.appendChild(el('span', {}, 'faults:'));
  c.appendChild(button('down', l.id, 'down', undefined, msg));
  c.appendChild(button('up', l.id, 'up', undefined, msg));
  c.appendChild(el('span', { class: 'sep' }, '|'));
  const eve = el('input', { type: 'number', min: 0, max: 1, step: 0.1, value: 0.5, 'data-input': 'eve' });
  c.appendChild(eve);
  c.appendChild(button('eve', l.id, 'eve', undefined, msg, () => eve.value));
  const loss = el('input', { type: 'number', min: 0, max: 100, step: 1, value: 10, 'data-input': 'loss' });
  c.appendChild(loss);
  c.appendChild(button('loss dB', l.id, 'loss', undefined, msg, () => loss.value));
  const cor = el('select', { 'data-input': 'corrupt' });
  for (const v of ['a', 'b', 'none']) cor.appendChild(el('option', { value: v }, 'end ' + v));
  c.appendChild(cor);
  c.appendChild(button('corrupt', l.id, 'corrupt', undefined, msg, () => cor.value));
  c.appendChild(el('span', { class: 'sep' }, '|'));
  c.appendChild(button('clear all', l.id, 'clear', undefined, msg));
  c.appendChild(msg);
  card.appendChild(c);

  const charts = el('div', { class: 'charts' });
  const pool = chartBox(`pool level: ${l.kmes[0]} (blue), ${l.kmes[1]} (orange, dashed)`);
  const rate = chartBox('delivered key rate');
  const qber = chartBox('QBER');
  const model = chartBox(`model: ${l.preset}, secret bit/s against km (unscaled), operating point`);
  for (const x of [pool, rate, qber, model]) charts.appendChild(x.box);
  card.appendChild(charts);
  document.getElementById('links').appendChild(card);
  ui.links[l.id] = { badge: badge, nums: nums, pool: pool.svg, rate: rate.svg, qber: qber.svg, model: model.svg };
}

function updateLink(l) {
  const u = ui.links[l.id];
  if (!u) return;
  u.badge.textContent = l.state;
  u.badge.setAttribute('class', 'badge state ' + l.state);
  const f = l.faults, faults = [];
  if (f.down) faults.push('down');
  if (f.eve > 0) faults.push('eve ' + f.eve);
  if (f.loss_db > 0) faults.push('loss ' + f.loss_db + ' dB');
  if (f.corrupt !== 'none') faults.push('corrupt ' + f.corrupt);
  if (f.drop !== 'none') faults.push('drop ' + f.drop);
  if (f.delay_ms > 0) faults.push('delay ' + f.delay_ms + ' ms');
  u.nums.textContent = `rate ${fmtRate(l.rate_bps)} · delivered ${fmtRate(l.delivered_rate_bps)} · QBER ${fmtPct(l.qber)}` +
    ` · pools ${fmtBits(l.pool_bits[0])} / ${fmtBits(l.pool_bits[1])} · KMEs see ${l.kme_link_up.map((v) => (v === 1 ? 'up' : v === 0 ? 'down' : '?')).join('/')}` +
    ` · ${l.distance_km} km ×${l.time_scale}` + (faults.length ? ' · faults: ' + faults.join(', ') : '');
  const h = hist.links[l.id] || { pool_a: [], pool_b: [], rate: [], qber: [] };
  drawChart(u.pool, hist.t, [{ v: h.pool_a, colour: '#1f77b4' }, { v: h.pool_b, colour: '#ff7f0e', dash: '5 3' }], { fmt: fmtBits });
  drawChart(u.rate, hist.t, [{ v: h.rate, colour: '#1b9e4b' }], { fmt: fmtRate });
  drawChart(u.qber, hist.t, [{ v: h.qber, colour: '#8e44ad' }], { fmt: fmtPct, ymin: 0.05 });
  drawModel(u.model, l);
}

// ---- KMEs and events --------------------------------------------------------------------------

function buildKme(k) {
  const card = el('div', { class: 'kme-card', 'data-kme': k.id });
  card.appendChild(el('h3', {}, k.id));
  card.appendChild(el('div', { class: 'sub' }, 'requests/s, every API, last 5 min'));
  const svg = sv('svg', { viewBox: `0 0 ${HIST} 50`, preserveAspectRatio: 'none' });
  card.appendChild(svg);
  const tbl = el('table');
  card.appendChild(tbl);
  document.getElementById('kmes').appendChild(card);
  ui.kmes[k.id] = { svg: svg, tbl: tbl };
}

function updateKme(k) {
  const u = ui.kmes[k.id];
  if (!u) return;
  const rows = [['API', 'req/s', 'total']];
  for (const a of k.requests) rows.push([a.api, a.rate.toFixed(1), String(a.total)]);
  for (const e of k.errors) rows.push([`errors ${e.api} ${e.status}`, '', String(e.total)]);
  rows.push(['peer errors', '', String(k.peer_errors)]);
  if (!k.reachable) rows.push(['admin /metrics', 'unreachable', '']);
  u.tbl.textContent = '';
  rows.forEach((r, i) => {
    const tr = el('tr');
    for (const c of r) tr.appendChild(el(i === 0 ? 'th' : 'td', {}, c));
    u.tbl.appendChild(tr);
  });
  const v = (hist.kmes[k.id] || { req_rate: [] }).req_rate;
  let max = 1;
  for (const x of v) max = Math.max(max, x);
  const off = HIST - v.length;
  u.svg.textContent = '';
  u.svg.appendChild(sv('polyline', { points: v.map((x, i) => (off + i) + ',' + (48 - (x / max) * 44).toFixed(1)).join(' ') }));
}

function updateEvents(events) {
  const ol = document.getElementById('events');
  ol.textContent = '';
  if (!events.length) ol.appendChild(el('li', {}, 'no event yet'));
  for (const e of events) {
    const li = el('li', { 'data-kind': e.kind });
    li.appendChild(el('span', { class: 't' }, new Date(e.t_ms).toLocaleTimeString()));
    li.appendChild(el('span', { class: 'k ' + e.kind }, e.kind));
    li.appendChild(document.createTextNode(e.subject + ': ' + e.text));
    ol.appendChild(li);
  }
}

// ---- polling ----------------------------------------------------------------------------------

function appendHistory(h) {
  hist.t.push(...h.t);
  const trim = (a) => { if (a.length > HIST) a.splice(0, a.length - HIST); };
  for (const id in h.links) {
    const dst = hist.links[id] || (hist.links[id] = { pool_a: [], pool_b: [], rate: [], qber: [] });
    for (const k of ['pool_a', 'pool_b', 'rate', 'qber']) { dst[k].push(...h.links[id][k]); trim(dst[k]); }
  }
  for (const id in h.kmes) {
    const dst = hist.kmes[id] || (hist.kmes[id] = { req_rate: [] });
    dst.req_rate.push(...h.kmes[id].req_rate);
    trim(dst.req_rate);
  }
  trim(hist.t);
}

let timer = null, busy = false;
async function tick(now) {
  if (busy) return;
  busy = true;
  clearTimeout(timer);
  try {
    const since = hist.t.length ? hist.t[hist.t.length - 1] : 0;
    const [s, h] = await Promise.all([getJSON('/api/state'), getJSON('/api/history?since=' + since)]);
    if (s.ok && h.ok) {
      appendHistory(h.body);
      const st = s.body;
      if (!built) {
        const m = await getJSON('/api/model');
        if (m.ok) for (const x of m.body.models) models[x.preset] = x;
        document.getElementById('lab-dir').textContent = st.lab_dir;
        buildTopology(st);
        st.links.forEach(buildLink);
        st.kmes.forEach(buildKme);
        built = true;
      }
      const sim = document.getElementById('sim-status');
      sim.textContent = st.sim_reachable ? 'simulator up' : 'simulator unreachable';
      sim.setAttribute('class', 'badge ' + (st.sim_reachable ? 'up' : 'down'));
      updateTopology(st);
      st.links.forEach(updateLink);
      st.kmes.forEach(updateKme);
      updateEvents(st.events);
      document.getElementById('updated').textContent = 'updated ' + new Date(st.time_ms).toLocaleTimeString();
    } else {
      document.getElementById('updated').textContent = 'qkd-dash answered ' + s.status + '/' + h.status;
    }
  } catch (e) {
    document.getElementById('updated').textContent = 'qkd-dash unreachable';
  } finally {
    busy = false;
    timer = setTimeout(tick, now === true ? POLL_MS / 2 : POLL_MS);
  }
}
tick();
