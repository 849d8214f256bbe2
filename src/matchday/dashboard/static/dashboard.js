// matchday dashboard: draws each .chart from its data-chart JSON with uPlot, marks events on the
// time axis, and refreshes the page's #content every data-refresh seconds without a reload. On the
// review queue's page, keys decide: a approves, o goes to the override label (Enter sends it), s skips.
(function () {
  "use strict";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                   "#7f7f7f", "#bcbd22"];
  const EVENT_COLOURS = {alert: "#d62728", resolved: "#2ca02c", promoted: "#2ca02c", rolled_back: "#d62728",
                         step_passed: "#1f77b4", started: "#9467bd", paused: "#ff7f0e", analysis_failed: "#ff7f0e"};

  function eventMarks(events) {
    return {hooks: {draw: [function (u) {
      const ctx = u.ctx, dpr = window.devicePixelRatio || 1;
      let lastLabel = -Infinity, row = 0;
      ctx.save();
      events.forEach(function (ev) {
        const x = Math.round(u.valToPos(ev.at, "x", true));
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
        ctx.strokeStyle = ctx.fillStyle = EVENT_COLOURS[ev.kind] || "#555";
        ctx.lineWidth = dpr;
        ctx.setLineDash([4 * dpr, 3 * dpr]);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        // a label only where it has room; crowded marks keep their line (the events table lists them all)
        row = x - lastLabel > 90 * dpr ? 0 : row + 1;
        if (row < 3) {
          ctx.font = (10 * dpr) + "px sans-serif";
          ctx.fillText(ev.label, x + 3 * dpr, u.bbox.top + (11 + 12 * row) * dpr);
          if (row === 0) lastLabel = x;
        }
      });
      ctx.restore();
    }]}};
  }

  function timeOptions(spec, width) {
    const xs = spec.x.concat(spec.events.map(function (e) { return e.at; }));
    let lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    if (hi - lo < 1) { lo -= 30; hi += 30; }
    const few = spec.x.length < 80;
    return {
      width: width, height: 220, plugins: [eventMarks(spec.events)],
      scales: {x: {time: true, range: [lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03]}},
      axes: [{}, {label: spec.unit, size: 60}],
      series: [{}].concat(spec.series.map(function (s, i) {
        return {label: s.label, stroke: s.dash ? "#999" : PALETTE[i % PALETTE.length], width: 1.5,
                dash: s.dash ? [6, 4] : undefined, spanGaps: true, points: {show: few && !s.dash, size: 5}};
      })),
    };
  }

  function histogramOptions(spec, width) {
    const categorical = spec.kind === "categorical" || spec.kind === "categories";
    const opts = {
      width: width, height: 260,
      scales: {x: {time: false}, y: {range: function (u, min, max) { return [0, max * 1.1 || 1]; }}},
      axes: [{}, {label: "share", size: 60}],
      series: [{}].concat(spec.series.map(function (s, i) {
        const colour = PALETTE[i % PALETTE.length];
        return {label: s.label, stroke: colour, fill: colour + "40", width: 1.5,
                paths: categorical ? uPlot.paths.bars({size: [0.4, 80], align: i === 0 ? -1 : 1})
                                   : uPlot.paths.stepped({align: 1}),
                points: {show: false}};
      })),
    };
    if (categorical) {
      const cats = spec.categories || [];
      opts.scales.x.range = [-0.6, cats.length - 0.4];
      opts.axes[0] = {splits: function () { return cats.map(function (_, i) { return i; }); },
                      values: function (u, splits) { return splits.map(function (v) { return cats[v] === undefined ? "" : cats[v]; }); }};
    }
    return opts;
  }

  function renderCharts(root) {
    root.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      const spec = JSON.parse(el.getAttribute("data-chart"));
      if (el._plot) el._plot.destroy();  // uPlot keeps window listeners until destroyed
      el.textContent = "";
      const width = Math.max(280, el.clientWidth || 600);
      const opts = spec.kind === "time" ? timeOptions(spec, width) : histogramOptions(spec, width);
      const data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
      const plot = el._plot = new uPlot(opts, data, el);
      let points = 0;
      spec.series.forEach(function (s) { if (!s.dash) s.values.forEach(function (v) { if (v !== null) points++; }); });
      el.dataset.points = String(points);
      el.dataset.series = String(plot.series.length - 1);
      el.dataset.rendered = "true";
    });
  }

  function startRefresh() {
    const seconds = Number(document.body.dataset.refresh || 0);
    if (!(seconds > 0)) return;
    let busy = false;
    setInterval(function () {
      const content = document.getElementById("content");
      if (busy || !content || document.hidden || content.contains(document.activeElement)) return;
      busy = true;
      fetch(window.location.href, {headers: {"X-Dashboard-Refresh": "1"}, cache: "no-store"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          const next = new DOMParser().parseFromString(html, "text/html").getElementById("content");
          if (!next) return;
          const old = document.getElementById("content");
          old.querySelectorAll(".chart").forEach(function (el) { if (el._plot) el._plot.destroy(); });
          old.replaceWith(next);
          renderCharts(next);
          document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
        })
        .catch(function () { /* the server is restarting or gone: try again next time */ })
        .finally(function () { busy = false; });
    }, seconds * 1000);
  }

  function typing(el) {
    if (!el || el === document.body) return false;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || el.isContentEditable;
  }

  function reviewKeys() {
    const item = document.getElementById("review-item");
    if (!item) return;
    let sent = false;
    function send(form) {  // one decision per page: a key held down or pressed twice sends it once
      if (sent || !form) return;
      sent = true;
      item.dataset.sending = "true";
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    }
    window.addEventListener("pageshow", function (e) {  // back to this page from the history: keys work again
      if (e.persisted) { sent = false; delete item.dataset.sending; }
    });
    const label = document.getElementById("override-label");
    if (label) {
      label.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && label.tagName === "SELECT") {  // a select does not send its form on Enter
          e.preventDefault();
          if (label.value) send(label.form); else label.reportValidity();
        } else if (e.key === "Escape") {
          label.blur();
        }
      });
      label.form.addEventListener("submit", function () { sent = true; });  // its button, or Enter in a number
    }
    document.addEventListener("keydown", function (e) {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
      if (typing(e.target) || typing(document.activeElement)) return;
      if (e.key === "a") {
        e.preventDefault();
        send(document.getElementById("approve-form"));
      } else if (e.key === "s") {
        e.preventDefault();
        send(document.getElementById("skip-form"));
      } else if (e.key === "o" && label) {
        e.preventDefault();  // the key goes to the page, not into the field it focuses
        label.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    reviewKeys();
    renderCharts(document);
    startRefresh();
    let resizing = null;  // charts are drawn to their panel's width: redraw when it changes
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () { renderCharts(document); }, 200);
    });
  });
})();
