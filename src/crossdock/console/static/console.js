// The console's charts: uPlot (vendored beside this file) fed by the server's JSON.
//
// <div class="chart" data-src="URL" data-every="2" data-kind="series|sample" data-unit="s"></div>
// The server answers {"x": [unix seconds...], "series": {"name": [values...]}, "band": ["lo", "hi"]}
// for kind "series" (the whole chart, replaced on every poll), or {"sample": {"name": value}} for
// kind "sample" (one reading per poll, kept in the browser for the last ten minutes).
"use strict";

(function () {
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  const KEEP_SECONDS = 600;

  function seriesOptions(names, band, unit) {
    const series = [{}];
    names.forEach(function (name, i) {
      const inBand = band && band.indexOf(name) >= 0;
      series.push({
        label: name,
        stroke: inBand ? "rgba(37, 99, 235, 0.35)" : PALETTE[i % PALETTE.length],
        width: inBand ? 1 : 2,
        dash: inBand ? [4, 4] : undefined,
        value: function (u, v) { return v == null ? "–" : (Math.round(v * 100) / 100) + (unit ? " " + unit : ""); },
      });
    });
    return series;
  }

  function bandsFor(names, band) {
    if (!band) return undefined;
    const lo = names.indexOf(band[0]) + 1, hi = names.indexOf(band[1]) + 1;
    if (lo < 1 || hi < 1) return undefined;
    return [{ series: [hi, lo], fill: "rgba(37, 99, 235, 0.12)" }];
  }

  class LiveChart {
    constructor(el) {
      this.el = el;
      this.src = el.dataset.src;
      this.kind = el.dataset.kind || "series";
      this.unit = el.dataset.unit || "";
      this.every = parseFloat(el.dataset.every || "0");
      this.plot = null;
      this.names = null;
      this.samples = { x: [], series: {} };
      this.timer = null;
    }

    start() {
      this.refresh();
      if (this.every > 0) this.timer = setInterval(() => this.refresh(), this.every * 1000);
    }

    stop() {
      if (this.timer) clearInterval(this.timer);
      if (this.plot) this.plot.destroy();
    }

    async refresh() {
      if (!document.body.contains(this.el)) { this.stop(); return; }
      let body;
      try {
        const response = await fetch(this.src, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.status === 401 || response.redirected) { window.location.reload(); return; }
        if (!response.ok) { this.el.dataset.state = "error"; return; }
        body = await response.json();
      } catch (e) {
        this.el.dataset.state = "offline";  // the server is away; the next poll tries again
        return;
      }
      this.el.dataset.state = "ok";
      this.draw(this.kind === "sample" ? this.accumulate(body) : body);
    }

    accumulate(body) {
      const s = this.samples, now = body.at || Date.now() / 1000;
      s.x.push(now);
      const names = new Set(Object.keys(s.series).concat(Object.keys(body.sample || {})));
      names.forEach((name) => {
        if (!s.series[name]) s.series[name] = s.x.slice(0, -1).map(() => null);
        const v = (body.sample || {})[name];
        s.series[name].push(v === undefined ? null : v);
      });
      while (s.x.length && s.x[0] < now - KEEP_SECONDS) {
        s.x.shift();
        Object.values(s.series).forEach((values) => values.shift());
      }
      return { x: s.x, series: s.series };
    }

    draw(body) {
      const names = Object.keys(body.series || {});
      const data = [body.x || []].concat(names.map((n) => body.series[n]));
      const empty = this.el.querySelector(".chart-empty");
      if (empty) empty.hidden = names.length > 0 && data[0].length > 0;
      const same = this.names && this.names.join("\u0000") === names.join("\u0000");
      if (this.plot && same) { this.plot.setData(data); return; }
      if (this.plot) this.plot.destroy();
      this.names = names;
      const width = Math.max(240, this.el.clientWidth || 480);
      this.plot = new uPlot({
        width: width,
        height: parseInt(this.el.dataset.height || "220", 10),
        scales: { x: { time: true } },
        series: seriesOptions(names, body.band, this.unit),
        bands: bandsFor(names, body.band),
        axes: [{}, { size: 56 }],
        legend: { live: true },
      }, data, this.el);
    }

    resize() {
      if (this.plot) this.plot.setSize({ width: Math.max(240, this.el.clientWidth), height: this.plot.height });
    }
  }

  const charts = new Map();

  function startCharts(root) {
    root.querySelectorAll(".chart[data-src]").forEach(function (el) {
      if (charts.has(el)) return;
      const chart = new LiveChart(el);
      charts.set(el, chart);
      chart.start();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      // A refused action answers 4xx with a flash saying why: show it, and do not log it as a
      // script error (it is an answer, not a fault).
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "4..", swap: true, error: false },
        { code: "...", swap: false, error: true },
      ];
    }
    const csrf = document.querySelector('meta[name="console-csrf"]');
    if (csrf) {
      // Every htmx request of this page carries the session's CSRF token.
      document.body.addEventListener("htmx:configRequest", function (e) {
        e.detail.headers["X-Console-CSRF"] = csrf.content;
      });
    }
    startCharts(document);
    document.body.addEventListener("htmx:afterSettle", function (e) { startCharts(e.target); });
    window.addEventListener("resize", function () { charts.forEach((c) => c.resize()); });
  });
})();
