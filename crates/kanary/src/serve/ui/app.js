// kanary web UI: plain JS, no build step, hash routing over the read-only JSON API
// (docs/api.md). Every text from the API goes through text nodes or setAttribute, never
// through markup parsing, so a container or command named like markup stays text.
"use strict";

(function () {
  const app = document.getElementById("app");
  const statusEl = document.getElementById("status");

  const FIGURES = ["cpu_percent", "memory_bytes", "syscalls", "tx_bytes", "rx_bytes", "forks"];
  const CLASSES = [
    "sequence_anomaly", "suspicious_syscall", "unexpected_process", "unexpected_file",
    "unauthorized_connection", "resource_anomaly", "escape_attempt", "privilege_escalation",
  ];
  const SEVERITIES = ["low", "medium", "high", "critical"];
  const REFRESH_MS = 3000;

  // ---- DOM helpers -------------------------------------------------------------------------

  // h("a", {href: "#/", class: "x"}, "text", child…): an element; strings become text nodes,
  // null/undefined/false children are skipped, arrays are flattened.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "on") {
        for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      } else if (k === "style" && typeof v === "object") {
        for (const [p, pv] of Object.entries(v)) el.style.setProperty(p, String(pv));
      } else {
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  // ---- formatting --------------------------------------------------------------------------

  function num(v, digits = 2) {
    if (typeof v !== "number" || !Number.isFinite(v)) return "—";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
    return v.toFixed(digits).replace(/\.?0+$/, "") || "0";
  }

  function bytes(v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return "—";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1000 && i < units.length - 1) { x /= 1000; i++; }
    return (v < 0 ? "-" : "") + num(x, x < 10 ? 1 : 0) + " " + units[i];
  }

  function figure(name, v) {
    return /bytes/.test(name) ? bytes(v) : num(v);
  }

  function duration(secs) {
    if (typeof secs !== "number" || !Number.isFinite(secs)) return "—";
    secs = Math.max(0, Math.round(secs));
    if (secs < 60) return secs + " s";
    if (secs < 3600) return Math.floor(secs / 60) + " min " + (secs % 60) + " s";
    return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
  }

  function time(ts) {
    if (typeof ts !== "string") return h("span", { class: "muted" }, "—");
    const t = Date.parse(ts);
    if (Number.isNaN(t)) return h("span", null, ts);
    const ago = (Date.now() - t) / 1000;
    const text = ago >= 0 && ago < 86400 ? duration(ago) + " ago" : new Date(t).toISOString();
    return h("time", { datetime: ts, title: ts }, text);
  }

  function shortId(id) {
    return typeof id === "string" && /^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : String(id ?? "");
  }

  function containerName(c) {
    if (!c || typeof c !== "object") return "—";
    return c.name || shortId(c.id);
  }

  function badge(text, kind) {
    return h("span", { class: "badge " + (kind || "") }, text);
  }

  function severityBadge(sev) {
    return badge(sev || "?", "sev-" + (SEVERITIES.includes(sev) ? sev : "unknown"));
  }

  function message(kind, text) {
    return h("div", { class: kind, role: kind === "error" ? "alert" : null }, text);
  }

  // ---- API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, msg) {
      super(msg);
      this.status = status;
    }
  }

  // A non-loopback agent wants `Authorization: Bearer TOKEN`; the token is asked once and
  // kept for the browser session only.
  function token() {
    try { return sessionStorage.getItem("kanary-token"); } catch (_) { return null; }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    let res;
    try {
      res = await fetch(path, { headers, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "cannot reach the agent (" + (e && e.message ? e.message : e) + ")");
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (!res.ok) {
      const msg = body && typeof body.error === "string" ? body.error : res.statusText || "request failed";
      throw new ApiError(res.status, path.split("?")[0] + ": " + res.status + " " + msg);
    }
    if (body === null || typeof body !== "object") {
      throw new ApiError(res.status, path.split("?")[0] + ": the answer is not JSON");
    }
    return body;
  }

  function tokenForm() {
    const input = h("input", { type: "password", placeholder: "token", autocomplete: "off" });
    return h("form", {
      class: "card",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          try { sessionStorage.setItem("kanary-token", input.value); } catch (_) { /* private mode */ }
          route();
        },
      },
    }, h("p", null, "This agent needs its access token (kanary run --token)."), input, " ", h("button", { type: "submit" }, "Use"));
  }

  function errorView(e) {
    const text = e instanceof Error ? e.message : String(e);
    const parts = [message("error", text)];
    if (e instanceof ApiError && e.status === 401) parts.push(tokenForm());
    return parts;
  }

  // ---- page life cycle ---------------------------------------------------------------------

  // Each navigation gets a page context; timers and charts of the previous page are dropped,
  // and late answers for a page no longer shown are ignored.
  let current = null;

  function newPage() {
    if (current) current.close();
    const page = {
      alive: true,
      timers: [],
      charts: [],
      every(ms, fn) {
        this.timers.push(setInterval(() => { if (this.alive) safe(fn)(); }, ms));
      },
      close() {
        this.alive = false;
        this.timers.forEach(clearInterval);
        this.charts.forEach((c) => { try { c.destroy(); } catch (_) { /* already gone */ } });
        this.charts = [];
      },
    };
    current = page;
    return page;
  }

  // Wraps an async step so that a failure becomes a message on the page, never an uncaught
  // exception.
  function safe(fn) {
    return async (...args) => {
      try {
        await fn(...args);
      } catch (e) {
        showStatus("error: " + (e && e.message ? e.message : e), true);
        if (!(e instanceof ApiError)) console.warn("kanary ui:", e);
      }
    };
  }

  function showStatus(text, bad) {
    statusEl.textContent = text;
    statusEl.className = "status" + (bad ? " bad" : "");
  }

  function refreshed() {
    showStatus("updated " + new Date().toLocaleTimeString());
  }

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const q = raw.indexOf("?");
    const path = q < 0 ? raw : raw.slice(0, q);
    const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
    return { path, params };
  }

  const routes = [
    [/^\/?$/, "overview", () => overviewPage],
    [/^\/container\/([^/]+)$/, "overview", () => containerPage],
    [/^\/alerts$/, "alerts", () => alertsPage],
    [/^\/alert\/(.+)$/, "alerts", () => alertPage],
    [/^\/network$/, "network", () => networkPage],
  ];

  async function route() {
    const page = newPage();
    const { path, params } = parseHash();
    let handler = null;
    let args = [];
    let nav = "";
    for (const [re, name, get] of routes) {
      const m = re.exec(path);
      if (m) {
        handler = get();
        args = m.slice(1).map((x) => { try { return decodeURIComponent(x); } catch (_) { return x; } });
        nav = name;
        break;
      }
    }
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
    clear(app);
    if (!handler) {
      app.appendChild(message("error", "No such page: " + path));
      return;
    }
    app.appendChild(h("p", { class: "muted" }, "Loading…"));
    try {
      await handler(page, params, ...args);
    } catch (e) {
      if (!page.alive) return;
      clear(app);
      append(app, errorView(e));
      showStatus("error", true);
    }
  }

  // Renders `build(data)` into the page on each refresh; an API failure after the first
  // render keeps the last view and says so in the status line.
  async function live(page, load, build, every = REFRESH_MS) {
    const first = await load();
    if (!page.alive) return;
    clear(app);
    build(first, true);
    refreshed();
    page.every(every, async () => {
      const data = await load();
      if (!page.alive) return;
      build(data, false);
      refreshed();
    });
  }

  // ---- charts ------------------------------------------------------------------------------

  function sparkline(values) {
    const vals = Array.isArray(values) ? values.filter((v) => typeof v === "number" && Number.isFinite(v)) : [];
    const w = 120, hgt = 28;
    const svgEl = s("svg", { class: "sparkline", viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: "img" });
    if (vals.length === 0) {
      svgEl.appendChild(s("text", { x: 2, y: 18, class: "spark-empty" }, "no score yet"));
      return svgEl;
    }
    const max = Math.max(1.25, ...vals);
    const y = (v) => (hgt - 2 - (Math.max(0, v) / max) * (hgt - 4)).toFixed(1);
    const x = (i) => (vals.length === 1 ? w / 2 : (i / (vals.length - 1)) * (w - 2) + 1).toFixed(1);
    // The threshold: the sparkline holds score / threshold, so 1 is the alert line.
    svgEl.appendChild(s("line", { x1: 0, x2: w, y1: y(1), y2: y(1), class: "spark-threshold" }));
    svgEl.appendChild(s("polyline", { points: vals.map((v, i) => x(i) + "," + y(v)).join(" "), class: "spark-line" }));
    const last = vals[vals.length - 1];
    svgEl.appendChild(s("circle", { cx: x(vals.length - 1), cy: y(last), r: 2, class: last > 1 ? "spark-dot hot" : "spark-dot" }));
    svgEl.appendChild(s("title", null, "score / threshold, last " + vals.length + " windows; latest " + num(last)));
    return svgEl;
  }

  function timestamps(series) {
    const ts = series && Array.isArray(series.ts) ? series.ts : [];
    return ts.map((t) => { const v = Date.parse(t); return Number.isNaN(v) ? null : v / 1000; });
  }

  function column(arr, n) {
    const out = new Array(n).fill(null);
    if (!Array.isArray(arr)) return out;
    for (let i = 0; i < n && i < arr.length; i++) {
      out[i] = typeof arr[i] === "number" && Number.isFinite(arr[i]) ? arr[i] : null;
    }
    return out;
  }

  // A vertical line at `at` (unix seconds), e.g. where an alert began.
  function markerPlugin(at) {
    return {
      hooks: {
        draw: (u) => {
          if (typeof at !== "number") return;
          const x = u.valToPos(at, "x", true);
          if (!Number.isFinite(x) || x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#d23";
          ctx.setLineDash([4, 3]);
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        },
      },
    };
  }

  // One uPlot chart, kept across refreshes (setData) while its shape stays the same.
  function chart(page, holder, key, spec) {
    if (typeof uPlot !== "function") {
      holder.appendChild(message("error", "the chart library did not load"));
      return;
    }
    page.chartsByKey = page.chartsByKey || new Map();
    const prev = page.chartsByKey.get(key);
    if (prev && prev.shape === spec.shape && prev.plot.root.isConnected) {
      prev.plot.setData(spec.data);
      return prev.box;
    }
    if (prev) {
      try { prev.plot.destroy(); } catch (_) { /* gone */ }
    }
    const box = h("div", { class: "chart", "data-chart": key }, h("h3", null, spec.title));
    holder.appendChild(box);
    const width = Math.max(280, Math.min(640, (holder.clientWidth || 600) - 8));
    const opts = {
      width,
      height: 170,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => spec.fmt(v)) }],
      series: [{}].concat(spec.series),
      bands: spec.bands || [],
      plugins: spec.marker !== undefined ? [markerPlugin(spec.marker)] : [],
    };
    const plot = new uPlot(opts, spec.data, box);
    page.charts.push(plot);
    page.chartsByKey.set(key, { plot, shape: spec.shape, box });
    return box;
  }

  const BAND = "rgba(60, 130, 220, 0.15)";

  function metricSpec(name, series, baseline, marker) {
    const xs = timestamps(series);
    const n = xs.length;
    const ys = column(series.metrics[name], n);
    const b = baseline && baseline[name];
    const data = [xs, ys];
    const seriesOpts = [{ label: name, stroke: "#2563eb", width: 1.5, value: (u, v) => figure(name, v) }];
    const spec = { title: name, fmt: (v) => figure(name, v), marker };
    if (b && typeof b.median === "number" && typeof b.spread === "number") {
      const hi = b.median + 3 * b.spread;
      const lo = Math.max(0, b.median - 3 * b.spread);
      data.push(new Array(n).fill(hi), new Array(n).fill(b.median), new Array(n).fill(lo));
      seriesOpts.push(
        { label: "baseline +3×spread", stroke: "rgba(60,130,220,0.5)", width: 1, value: (u, v) => figure(name, v) },
        { label: "median", stroke: "rgba(60,130,220,0.8)", dash: [4, 4], width: 1, value: (u, v) => figure(name, v) },
        { label: "−3×spread", stroke: "rgba(60,130,220,0.5)", width: 1, value: (u, v) => figure(name, v) },
      );
      spec.bands = [{ series: [2, 4], fill: BAND }];
      spec.shape = "band";
    } else {
      spec.shape = "plain";
    }
    spec.series = seriesOpts;
    spec.data = data;
    return spec;
  }

  function scoreSpec(det, series, marker) {
    const xs = timestamps(series);
    const n = xs.length;
    const ys = column(series.scores[det], n);
    const th = series.thresholds && typeof series.thresholds[det] === "number" ? series.thresholds[det] : null;
    const data = [xs, ys];
    const seriesOpts = [{ label: det, stroke: "#7c3aed", width: 1.5, value: (u, v) => num(v) }];
    if (th !== null) {
      data.push(new Array(n).fill(th));
      seriesOpts.push({ label: "threshold", stroke: "#dc2626", dash: [6, 4], width: 1.5, value: (u, v) => num(v) });
    }
    return {
      title: det + " score", fmt: (v) => num(v), marker, series: seriesOpts, data,
      shape: th !== null ? "th" : "plain",
    };
  }

  // Charts of a `series` object (docs/api.md): figures against the baseline band, then each
  // detector's score against its threshold.
  function seriesCharts(page, holder, series, baseline, marker) {
    if (!series || typeof series !== "object" || !Array.isArray(series.ts)) {
      return;
    }
    if (series.ts.length === 0) {
      if (!holder.firstChild) holder.appendChild(message("muted", "No windows in memory yet."));
      return;
    }
    const metrics = series.metrics && typeof series.metrics === "object" ? series.metrics : {};
    const scores = series.scores && typeof series.scores === "object" ? series.scores : {};
    series.metrics = metrics;
    series.scores = scores;
    const names = FIGURES.filter((f) => f in metrics).concat(Object.keys(metrics).filter((f) => !FIGURES.includes(f)).sort());
    const dets = Object.keys(scores).sort((a, b) => (a === "combined" ? -1 : b === "combined" ? 1 : a.localeCompare(b)));
    let figs = holder.querySelector(".figures");
    let scs = holder.querySelector(".scores");
    if (!figs) {
      figs = h("div", { class: "chart-grid figures" });
      scs = h("div", { class: "chart-grid scores" });
      holder.appendChild(h("h2", null, "Figures against the baseline band"));
      if (!baseline) holder.appendChild(h("p", { class: "muted" }, "No baseline band yet (learning)."));
      holder.appendChild(figs);
      holder.appendChild(h("h2", null, "Detector scores against their thresholds"));
      holder.appendChild(scs);
    }
    for (const name of names) chart(page, figs, "m:" + name, metricSpec(name, series, baseline, marker));
    for (const det of dets) chart(page, scs, "s:" + det, scoreSpec(det, series, marker));
    if (dets.length === 0 && !scs.firstChild) scs.appendChild(h("p", { class: "muted" }, "No scores yet."));
  }

  // ---- shared views ------------------------------------------------------------------------

  function stateCell(c) {
    if (c.state === "learning") {
      const l = c.learning || {};
      const p = typeof l.progress === "number" ? Math.max(0, Math.min(1, l.progress)) : 0;
      return h("div", { class: "learning" },
        badge("learning", "state-learning"),
        h("div", { class: "progress", title: Math.round(p * 100) + "%" },
          h("div", { class: "progress-bar", style: { width: (p * 100).toFixed(1) + "%" } })),
        h("span", { class: "muted small" }, Math.round(p * 100) + "%, ETA " + duration(l.eta_s)));
    }
    if (c.state === "detecting") return badge("detecting", "state-detecting");
    return badge(c.state || "unknown", "state-other");
  }

  function alertsTable(alerts, withContainer = true) {
    if (!Array.isArray(alerts) || alerts.length === 0) return h("p", { class: "muted" }, "No alerts.");
    return h("table", { class: "alerts" },
      h("thead", null, h("tr", null,
        h("th", null, "Last seen"), withContainer ? h("th", null, "Container") : null, h("th", null, "Class"),
        h("th", null, "Severity"), h("th", null, "Score / threshold"), h("th", null, "Detector"),
        h("th", null, "Count"), h("th", null, "State"))),
      h("tbody", null, alerts.filter((a) => a && typeof a === "object").map((a) => h("tr", { class: a.ended ? "ended" : "open" },
        h("td", null, time(a.last_seen)),
        withContainer ? h("td", null, a.container && a.container.id
          ? h("a", { href: "#/container/" + encodeURIComponent(a.container.id) }, containerName(a.container))
          : containerName(a.container)) : null,
        h("td", null, h("a", { href: "#/alert/" + encodeURIComponent(String(a.id)) }, String(a.class || "?"))),
        h("td", null, severityBadge(a.severity)),
        h("td", null, num(a.score) + " / " + num(a.threshold)),
        h("td", null, String(a.detector || "")),
        h("td", null, String(a.count ?? "")),
        h("td", null, a.ended ? badge("ended", "ended") : badge("open", "open"))))));
  }

  // ---- #/ overview -------------------------------------------------------------------------

  async function overviewPage(page) {
    await live(page, () => api("/api/overview"), (d) => {
      clear(app);
      const a = d.agent || {};
      const drops = a.drops && typeof a.drops === "object" ? Object.entries(a.drops).filter(([, v]) => v) : [];
      app.appendChild(h("section", { class: "agent card" },
        h("span", null, "kanary ", String(a.version || "")),
        h("span", null, "up since ", time(a.started)),
        h("span", null, "CPU ", num(a.cpu_percent, 1), "%"),
        h("span", null, "RSS ", bytes(a.rss_bytes)),
        h("span", null, num(a.records_per_s, 1), " records/s"),
        h("span", { class: drops.length ? "bad" : "" }, "drops ", drops.length ? drops.map(([k, v]) => k + " " + v).join(", ") : "none")));
      const cs = Array.isArray(d.containers) ? d.containers : [];
      app.appendChild(h("h2", null, "Containers (" + cs.length + ")"));
      if (cs.length === 0) {
        app.appendChild(h("p", { class: "muted" }, "No containers seen."));
      } else {
        app.appendChild(h("table", { class: "containers" },
          h("thead", null, h("tr", null, h("th", null, "Container"), h("th", null, "Image"), h("th", null, "State"),
            h("th", null, "Score"), h("th", null, "Last windows"), h("th", null, "Open alerts"))),
          h("tbody", null, cs.filter((c) => c && typeof c === "object").map((c) => h("tr", { class: c.running === false ? "stopped" : "" },
            h("td", null, h("a", { href: "#/container/" + encodeURIComponent(String(c.id)) }, containerName(c)),
              c.running === false ? h("span", { class: "muted small" }, " (stopped)") : null),
            h("td", { class: "small" }, String(c.image || "—")),
            h("td", null, stateCell(c)),
            h("td", null, c.score && typeof c.score === "object"
              ? h("span", { title: String(c.score.detector || "") }, num(c.score.score) + " / " + num(c.score.threshold))
              : h("span", { class: "muted" }, "—")),
            h("td", null, sparkline(c.sparkline)),
            h("td", null, c.open_alerts
              ? h("a", { class: "bad", href: "#/alerts?open=true&container=" + encodeURIComponent(String(c.id)) }, String(c.open_alerts))
              : "0"))))));
      }
      app.appendChild(h("h2", null, "Recent alerts"));
      app.appendChild(alertsTable(d.alerts));
    });
  }

  // ---- #/container/<id> --------------------------------------------------------------------

  async function containerPage(page, _params, id) {
    let header, charts, alerts;
    await live(page, () => api("/api/containers/" + encodeURIComponent(id)), (d, first) => {
      const c = d.container || {};
      if (first) {
        header = h("section");
        charts = h("section", { class: "charts" });
        alerts = h("section");
        app.append(header, charts, alerts);
      }
      clear(header);
      append(header, [
        h("h1", null, containerName(c), " ", stateCell(c)),
        h("p", { class: "muted small" }, String(c.image || ""), " · ", shortId(c.id || id),
          c.running === false ? " · stopped" : "", " · since ", time(c.since)),
      ]);
      seriesCharts(page, charts, d.series, d.baseline, undefined);
      clear(alerts);
      alerts.appendChild(h("h2", null, "Alerts of this container"));
      alerts.appendChild(alertsTable(d.alerts, false));
    });
  }

  // ---- #/alerts ----------------------------------------------------------------------------

  async function alertsPage(page, params) {
    const q = new URLSearchParams();
    for (const k of ["container", "class", "severity", "since", "open", "limit"]) {
      const v = params.get(k);
      if (v) q.set(k, v);
    }
    const field = (label, input) => h("label", null, label, input);
    const select = (name, options) => h("select", { name },
      h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: params.get(name) === o }, o)));
    const form = h("form", {
      class: "filters card",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          const fd = new FormData(form);
          const next = new URLSearchParams();
          for (const [k, v] of fd.entries()) if (v) next.set(k, String(v));
          location.hash = "#/alerts" + (next.toString() ? "?" + next.toString() : "");
        },
      },
    },
    field("Container ", h("input", { name: "container", value: params.get("container") || "", placeholder: "name or id prefix" })),
    field("Class ", select("class", CLASSES)),
    field("Severity ≥ ", select("severity", SEVERITIES)),
    field("Since ", h("input", { name: "since", value: params.get("since") || "", placeholder: "1h or RFC 3339", size: 12 })),
    field("", h("input", { type: "checkbox", name: "open", value: "true", checked: params.get("open") === "true" })),
    " open only ",
    h("button", { type: "submit" }, "Filter"));
    let list;
    await live(page, () => api("/api/alerts" + (q.toString() ? "?" + q.toString() : "")), (d, first) => {
      if (first) {
        list = h("section");
        app.append(h("h1", null, "Alerts"), form, list);
      }
      clear(list);
      // The API answers a list; accept {"alerts": [...]} too.
      const items = Array.isArray(d) ? d : Array.isArray(d.alerts) ? d.alerts : [];
      list.appendChild(h("p", { class: "muted small" }, items.length + " alert" + (items.length === 1 ? "" : "s")));
      list.appendChild(alertsTable(items));
    }, 5000);
  }

  // ---- #/alert/<id> ------------------------------------------------------------------------

  function itemView(item) {
    if (item === null || typeof item !== "object") return h("li", null, String(item));
    return h("li", null, Object.entries(item).map(([k, v]) =>
      h("span", { class: "kv" }, h("b", null, k + ": "), typeof v === "object" ? JSON.stringify(v) : String(v), " ")));
  }

  function featuresView(items) {
    const rows = items.filter((i) => i && typeof i === "object");
    if (rows.length === 0) return h("ul", null, items.map(itemView));
    return h("table", { class: "features" },
      h("thead", null, h("tr", null, h("th", null, "Feature"), h("th", null, "Baseline"), h("th", null, "Observed"), h("th", null, "Detail"))),
      h("tbody", null, rows.map((f) => h("tr", null,
        h("td", { class: "mono" }, String(f.feature ?? "")),
        h("td", null, num(f.baseline, 4)),
        h("td", null, num(f.observed, 4)),
        h("td", { class: "mono small" }, f.detail == null ? "" : String(f.detail))))));
  }

  // Each detector's score as a bar against its threshold (the marker); each row has its own
  // scale, since the detectors score in different units.
  function detectorsView(items) {
    const rows = items.filter((i) => i && typeof i === "object");
    if (rows.length === 0) return h("ul", null, items.map(itemView));
    return h("div", { class: "bars" }, rows.map((d) => {
      const score = typeof d.score === "number" && Number.isFinite(d.score) ? d.score : 0;
      const th = typeof d.threshold === "number" && Number.isFinite(d.threshold) ? d.threshold : 0;
      const scale = Math.max(score, th, 1e-9) * 1.15;
      const hot = d.anomalous === true || (d.anomalous === undefined && score > th);
      return h("div", { class: "bar-row" + (hot ? " hot" : ""), "data-detector": String(d.detector ?? "") },
        h("span", { class: "bar-label" }, String(d.detector ?? "?")),
        h("div", { class: "bar-track" },
          h("div", { class: "bar-fill", style: { width: ((score / scale) * 100).toFixed(1) + "%" } }),
          h("div", { class: "bar-threshold", title: "threshold " + num(th), style: { left: ((th / scale) * 100).toFixed(1) + "%" } })),
        h("span", { class: "bar-value" }, num(score) + " / " + num(th), " ", hot ? badge("anomalous", "sev-high") : badge("normal", "ok")));
    }));
  }

  function stepCard(step, i) {
    const items = Array.isArray(step.items) ? step.items : [];
    let body;
    if (step.step === "features") body = featuresView(items);
    else if (step.step === "detectors") body = detectorsView(items);
    else body = h("ul", null, items.map(itemView));
    return h("article", { class: "step card step-" + String(step.step || "other"), "data-step": String(step.step || "") },
      h("header", null, h("span", { class: "step-no" }, String(i + 1)), h("span", { class: "step-kind" }, String(step.step || "")),
        h("h3", null, String(step.title || ""))),
      items.length ? body : h("p", { class: "muted" }, "nothing recorded"));
  }

  async function alertPage(page, _params, id) {
    const d = await api("/api/alerts/" + encodeURIComponent(id));
    if (!page.alive) return;
    clear(app);
    const a = d.alert && typeof d.alert === "object" ? d.alert : {};
    const c = a.container || {};
    app.appendChild(h("section", { class: "alert-head" },
      h("h1", null, String(a.class || "alert"), " ", severityBadge(a.severity), " ", a.ended ? badge("ended", "ended") : badge("open", "open")),
      h("p", null, "Container ",
        c.id ? h("a", { class: "container-link", href: "#/container/" + encodeURIComponent(c.id) }, containerName(c)) : containerName(c),
        " · score ", num(a.score), " / threshold ", num(a.threshold), " (", String(a.detector || "?"), ")",
        " · ", String(a.count ?? "?"), " window(s) · first ", time(a.first_seen), " · last ", time(a.last_seen)),
      h("p", { class: "muted small mono" }, "alert ", String(a.id ?? id))));
    const steps = Array.isArray(d.steps) ? d.steps.filter((x) => x && typeof x === "object") : [];
    app.appendChild(h("h2", null, "How it was decided"));
    if (steps.length === 0) app.appendChild(h("p", { class: "muted" }, "No analysis steps recorded."));
    app.appendChild(h("div", { class: "flow" }, steps.map((st, i) => [i ? h("div", { class: "flow-arrow", "aria-hidden": "true" }, "↓") : null, stepCard(st, i)])));
    if (d.series && typeof d.series === "object" && Array.isArray(d.series.ts) && d.series.ts.length) {
      const holder = h("section", { class: "charts" });
      app.appendChild(h("h2", null, "The container around the alert"));
      app.appendChild(holder);
      const at = Date.parse(a.first_seen);
      seriesCharts(page, holder, d.series, null, Number.isNaN(at) ? undefined : at / 1000);
    }
    refreshed();
  }

  // ---- #/network ---------------------------------------------------------------------------

  function networkSvg(nodes, edges) {
    const size = 560, cx = size / 2, cy = size / 2;
    const r = nodes.length <= 1 ? 0 : size / 2 - 90;
    const pos = new Map();
    nodes.forEach((n, i) => {
      const ang = (2 * Math.PI * i) / Math.max(1, nodes.length) - Math.PI / 2;
      pos.set(String(n.id), { x: cx + r * Math.cos(ang), y: cy + r * Math.sin(ang) });
    });
    const svgEl = s("svg", { class: "network", viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: "img" },
      s("defs", null,
        s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 20, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
          s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" })),
        s("marker", { id: "arrow-bad", viewBox: "0 0 10 10", refX: 20, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
          s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow bad" }))));
    // Authorized edges first, so unauthorized ones are drawn on top.
    const sorted = edges.slice().sort((a, b) => (a.authorized === false) - (b.authorized === false));
    for (const e of sorted) {
      const p = pos.get(String(e.from)), q = pos.get(String(e.to));
      if (!p || !q) continue;
      const bad = e.authorized === false;
      svgEl.appendChild(s("line", {
        x1: p.x, y1: p.y, x2: q.x, y2: q.y,
        class: "edge" + (bad ? " unauthorized" : "") + (e.failed ? " failed" : ""),
        "marker-end": bad ? "url(#arrow-bad)" : "url(#arrow)",
      }, s("title", null, `${e.protocol || "?"}/${e.port ?? "?"}: ${e.count ?? 0} connection(s), ${e.failed ?? 0} failed${bad ? ", UNAUTHORIZED" : ""}`)));
    }
    for (const n of nodes) {
      const p = pos.get(String(n.id));
      const isContainer = n.image !== null && n.image !== undefined;
      const g = s("g", { class: "node" + (isContainer ? " container" : " external") + (n.running === false ? " stopped" : "") },
        s("circle", { cx: p.x, cy: p.y, r: isContainer ? 14 : 9 }),
        s("text", { x: p.x, y: p.y + (p.y >= cy ? 30 : -20), "text-anchor": "middle" }, String(n.name || shortId(n.id))),
        s("title", null, String(n.name || "") + (n.image ? " (" + n.image + ")" : "") + " " + String(n.id)));
      if (isContainer) {
        const link = s("a", { href: "#/container/" + encodeURIComponent(String(n.id)) });
        link.appendChild(g);
        svgEl.appendChild(link);
      } else {
        svgEl.appendChild(g);
      }
    }
    return svgEl;
  }

  async function networkPage(page) {
    await live(page, () => api("/api/network"), (d) => {
      clear(app);
      const nodes = Array.isArray(d.nodes) ? d.nodes.filter((n) => n && typeof n === "object" && n.id != null) : [];
      const edges = Array.isArray(d.edges) ? d.edges.filter((e) => e && typeof e === "object") : [];
      const names = new Map(nodes.map((n) => [String(n.id), n.name || shortId(n.id)]));
      const bad = edges.filter((e) => e.authorized === false).length;
      app.appendChild(h("h1", null, "Network"));
      app.appendChild(h("p", { class: "muted" }, nodes.length + " nodes, " + edges.length + " connections",
        bad ? h("span", { class: "bad" }, ", " + bad + " unauthorized") : null));
      if (nodes.length === 0) {
        app.appendChild(h("p", { class: "muted" }, "No connections seen yet."));
        return;
      }
      app.appendChild(h("div", { class: "card network-box" }, networkSvg(nodes, edges)));
      app.appendChild(h("table", { class: "edges" },
        h("thead", null, h("tr", null, ["From", "To", "Port", "Count", "Failed", "Last seen", ""].map((t) => h("th", null, t)))),
        h("tbody", null, edges.map((e) => h("tr", { class: e.authorized === false ? "unauthorized" : "" },
          h("td", null, String(names.get(String(e.from)) ?? e.from)),
          h("td", null, String(names.get(String(e.to)) ?? e.to)),
          h("td", null, String(e.protocol || ""), "/", String(e.port ?? "")),
          h("td", null, String(e.count ?? "")),
          h("td", null, String(e.failed ?? "")),
          h("td", null, time(e.last_seen)),
          h("td", null, e.authorized === false ? badge("unauthorized", "sev-high") : ""))))));
    }, 10000);
  }

  // ---- start -------------------------------------------------------------------------------

  window.addEventListener("hashchange", () => { route(); });
  window.addEventListener("unhandledrejection", (ev) => {
    showStatus("error: " + (ev.reason && ev.reason.message ? ev.reason.message : ev.reason), true);
  });
  route();
})();
