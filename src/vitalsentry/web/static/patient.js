// Patient timeline: every measured vital, the risk with its MC-dropout band, NEWS2 and the alarm
// episodes on one synced time axis (uPlot). Each zoom or pan asks the server for the range at
// the chart's pixel width (min/max per pixel column), so a day of 1 Hz readings stays light.
// The state and alarm episodes are polled as the ward polls its rows (ETag: 304 while nothing
// changed); when they change they are swapped in, and charts that show the newest data follow it.
(function () {
  "use strict";
  var box = document.getElementById("charts");
  var info = document.getElementById("cursor-info");
  var status = document.getElementById("range-status");
  var tables = document.getElementById("tables");
  var first = Number(box.dataset.first), last = Number(box.dataset.last);
  var charts = [], range = null, pending = 0;
  var HEIGHT = 130;
  var PERIOD_MS = 1000;
  window.vitalsentryPatient = { loads: 0, drawn: {}, points: 0, range: null, changes: 0, lastChange: null };

  function fmtTime(s) { return new Date(s * 1000).toLocaleString(); }
  function fmt(v, d) { return v === null || v === undefined ? "—" : Number(v).toFixed(d); }

  function alarmPlugin(alarms, to) {
    return { hooks: { drawClear: [function (u) {
      var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
      ctx.save();
      alarms.forEach(function (a) {
        var x0 = u.valToPos(a.start, "x", true), x1 = u.valToPos(a.end === null ? to : a.end, "x", true);
        ctx.fillStyle = "rgba(179, 38, 30, 0.13)";
        ctx.fillRect(x0, top, Math.max(2, x1 - x0), h);
        if (a.acked_at !== null) {
          var xa = u.valToPos(a.acked_at, "x", true);
          ctx.strokeStyle = "#16324f"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5;
          ctx.beginPath(); ctx.moveTo(xa, top); ctx.lineTo(xa, top + h); ctx.stroke();
        }
      });
      ctx.restore();
    }] } };
  }

  function baseOpts(title, unit, data) {
    return {
      title: title, width: box.clientWidth, height: HEIGHT,
      scales: { x: { time: true, min: data.from, max: data.to } },
      axes: [{ size: 44, space: 90 }, { label: unit, size: 56, labelSize: 24 }],
      padding: [8, 16, 0, 0],
      legend: { show: false },
      cursor: { sync: { key: "vitalsentry" }, drag: { x: true, y: false, setScale: false } },
      plugins: [alarmPlugin(data.alarms, data.to)],
      hooks: { setSelect: [onSelect], ready: [function (u) { u.over.addEventListener("dblclick", showAll); }] }
    };
  }

  // Charts are pictures to assistive technology; the table view holds their values.
  function labelled(u, what) {
    u.root.setAttribute("role", "img");
    u.root.setAttribute("aria-label", "Chart of " + what + " over the shown range; the table view below lists the values.");
    return u;
  }

  function vitalChart(v, data) {
    var xs = [], ys = [];
    v.t.forEach(function (t, i) {
      xs.push(t); ys.push(v.lo[i]);
      if (v.hi[i] !== v.lo[i]) { xs.push(t); ys.push(v.hi[i]); }
    });
    var opts = baseOpts(v.label + (v.sparse ? " (sparse: points)" : ""), v.unit, data);
    opts.scales.y = { range: function (u, lo, hi) { var pad = Math.max(1, (hi - lo) * 0.1); return [lo - pad, hi + pad]; } };
    opts.series = [{}, v.sparse
      ? { label: v.label, stroke: "#16324f", width: 1, paths: uPlot.paths.stepped({ align: 1 }), points: { show: v.t.length < box.clientWidth / 6, size: 5, fill: "#16324f" } }
      : { label: v.label, stroke: "#16324f", width: 1, points: { show: false } }];
    window.vitalsentryPatient.drawn[v.name] = v.t.length;
    return labelled(new uPlot(opts, [xs, ys], box), v.label);
  }

  function riskChart(s, data) {
    var opts = baseOpts("Risk (0–1), band: MC-dropout interval; shaded: alarm episodes", "risk", data);
    opts.scales.y = { range: [0, 1] };
    opts.series = [{},
      { label: "risk", stroke: "#b3261e", width: 2 },
      { label: "band high", stroke: "rgba(179,38,30,0.3)", width: 1, points: { show: false } },
      { label: "band low", stroke: "rgba(179,38,30,0.3)", width: 1, points: { show: false } }];
    opts.bands = [{ series: [2, 3], fill: "rgba(179, 38, 30, 0.15)" }];
    opts.hooks.setCursor = [function (u) {
      var i = u.cursor.idx;
      if (i === null || i === undefined) { return; }
      info.textContent = fmtTime(s.t[i]) + ": risk " + fmt(s.risk[i], 2) + " (" + fmt(s.lo[i], 2) + "–" + fmt(s.hi[i], 2) +
        "), " + (s.level[i] || "—") + ", driven by " + (s.top[i] || "—") + ", NEWS2 " + (s.news2[i] === null ? "—" : s.news2[i]);
    }];
    window.vitalsentryPatient.drawn.risk = s.t.length;
    return labelled(new uPlot(opts, [s.t, s.risk, s.hi, s.lo], box), "risk");
  }

  function news2Chart(s, data) {
    var opts = baseOpts("NEWS2 (clinical baseline)", "NEWS2", data);
    opts.scales.y = { range: [0, 20] };
    opts.series = [{}, { label: "NEWS2", stroke: "#525a64", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }];
    return labelled(new uPlot(opts, [s.t, s.news2], box), "NEWS2");
  }

  function cell(row, text, header) {
    var c = document.createElement(header ? "th" : "td");
    if (header) { c.scope = header; }
    c.textContent = text; row.appendChild(c); return c;
  }

  function table(caption, head, rows) {
    var t = document.createElement("table"), cap = t.createCaption(), hr = t.createTHead().insertRow();
    t.className = "datatable"; cap.textContent = caption;
    head.forEach(function (h) { cell(hr, h, "col"); });
    var body = t.createTBody();
    rows.forEach(function (r) { var tr = body.insertRow(); r.forEach(function (v, i) { cell(tr, v, i === 0 ? "row" : null); }); });
    return t;
  }

  function renderTables(data) {
    var s = data.scores;
    tables.replaceChildren(table("Scored windows", ["Window end", "Risk", "MC-dropout band", "Level", "Contributing vital", "NEWS2"],
      s.t.map(function (t, i) { return [fmtTime(t), fmt(s.risk[i], 2), fmt(s.lo[i], 2) + "–" + fmt(s.hi[i], 2), s.level[i] || "—", s.top[i] || "—", s.news2[i] === null ? "—" : String(s.news2[i])]; })));
    data.vitals.forEach(function (v) {
      tables.appendChild(table(v.label + " (" + v.unit + "), lowest and highest reading per interval", ["Time", "Lowest", "Highest"],
        v.t.map(function (t, i) { return [fmtTime(t), fmt(v.lo[i], 1), fmt(v.hi[i], 1)]; })));
    });
  }

  function draw(data) {
    charts.forEach(function (u) { u.destroy(); });
    window.vitalsentryPatient.drawn = {};
    window.vitalsentryPatient.alarms = data.alarms;
    window.vitalsentryPatient.vitals = data.vitals.map(function (v) { return { name: v.name, sparse: v.sparse }; });
    charts = [riskChart(data.scores, data)];
    data.vitals.forEach(function (v) { charts.push(vitalChart(v, data)); });
    charts.push(news2Chart(data.scores, data));
    renderTables(data);
    var n = data.vitals.reduce(function (a, v) { return a + v.t.length; }, 0);
    window.vitalsentryPatient.points = n;
    status.textContent = "Showing " + fmtTime(data.from) + " to " + fmtTime(data.to) + " (" + n + " vital points after downsampling).";
  }

  function load(from, to) {
    from = Math.max(first, Math.floor(from)); to = Math.min(last, Math.ceil(to));
    if (to <= from) { to = from + 60; }
    var ticket = ++pending, url = box.dataset.src + "?start=" + from + "&end=" + to + "&columns=" + Math.max(50, box.clientWidth);
    return fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (r.status === 401) { window.location.assign("/login"); } return r.json(); })
      .then(function (data) {
        if (ticket !== pending) { return; }
        range = [data.from, data.to];
        window.vitalsentryPatient.range = range;
        draw(data);
        window.vitalsentryPatient.loads += 1;
        if (window.vitalsentryPatient.firstDrawMs === undefined) { window.vitalsentryPatient.firstDrawMs = performance.now(); }
      });
  }

  function onSelect(u) {
    if (u.select.width < 3) { return; }
    var a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    load(a, b);
  }

  function showAll() { load(first, last); }

  document.querySelectorAll("[data-hours]").forEach(function (b) {
    b.addEventListener("click", function () { load(last - Number(b.dataset.hours) * 3600, last); });
  });
  document.querySelectorAll("[data-pan]").forEach(function (b) {
    b.addEventListener("click", function () {
      var w = range[1] - range[0], d = Number(b.dataset.pan) * w / 2;
      var from = Math.min(Math.max(first, range[0] + d), last - w);
      load(from, from + w);
    });
  });
  // Follow the box's width at once (cheap), and ask for data at the new width when it settles.
  var resizeTimer = null, drawnWidth = box.clientWidth;
  new ResizeObserver(function () {
    if (box.clientWidth === drawnWidth) { return; }
    drawnWidth = box.clientWidth;
    charts.forEach(function (u) { u.setSize({ width: drawnWidth, height: HEIGHT }); });
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (range) { load(range[0], range[1]); } }, 400);
  }).observe(box);
  var live = document.getElementById("patient-live");
  var liveHtml = live.innerHTML.trim();
  function follow(newest) {
    var following = range !== null && range[1] >= last - 1;
    last = newest;
    if (following) { load(Math.max(first, last - (range[1] - range[0])), last); }
  }
  function poll() {
    fetch(live.dataset.src, { credentials: "same-origin", cache: "no-cache" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html.trim() === liveHtml) { return; }
        liveHtml = html.trim();
        // Keep keyboard focus on the same alarm's button across the swap.
        var row = live.contains(document.activeElement) ? document.activeElement.closest("tr[data-alarm]") : null;
        live.innerHTML = html;
        var again = row ? live.querySelector('tr[data-alarm="' + CSS.escape(row.dataset.alarm) + '"] button') : null;
        if (again) { again.focus(); }
        var newest = Number(live.firstElementChild.dataset.last);
        if (newest > last) { follow(newest); }
        window.vitalsentryPatient.changes += 1;
        window.vitalsentryPatient.lastChange = Date.now();
      })
      .catch(function () { status.textContent = "Connection lost, retrying."; })
      .finally(function () { setTimeout(poll, PERIOD_MS); });
  }
  load(Math.max(first, last - 6 * 3600), last);
  setTimeout(poll, PERIOD_MS);
})();
