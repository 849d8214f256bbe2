// matchday dashboard: draws each .chart from its data-chart JSON with uPlot, times in UTC on a 24-hour
// clock; marks rollout events and alerts under the time axis (a marker each, close ones grouped, a
// tooltip listing them); refreshes the page's #content every data-refresh seconds without a reload. On
// the review queue's page, keys decide: a approves, o goes to the override label (Enter sends it), s skips.
(function () {
  "use strict";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                   "#7f7f7f", "#bcbd22"];
  const TIP_LINES = 12;  // a tooltip lists this many marks at most
  const MARK_GAP = 24;  // CSS pixels: marks closer than this share one marker (a marker is at most 24 wide)
  const utc = function (seconds) { return uPlot.tzDate(new Date(seconds * 1e3), "Etc/UTC"); };
  const stamp = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}");
  // uPlot's time-axis table: tick step (s), its label, then what is added when the year, month, day, hour,
  // minute or second changed since the previous tick (the first tick says the date)
  const DAY = "\n{YYYY}-{MM}-{DD}", MONTH_DAY = "\n{MM}-{DD}";
  const TIME_TICKS = [
    [86400 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [86400 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [86400, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", DAY, null, MONTH_DAY, null, null, null, 1],
    [60, "{HH}:{mm}", DAY, null, MONTH_DAY, null, null, null, 1],
    [1, "{HH}:{mm}:{ss}", DAY, null, MONTH_DAY, null, null, null, 1],
    [0.001, ":{ss}.{fff}", DAY + " {HH}:{mm}", null, MONTH_DAY + " {HH}:{mm}", null, "\n{HH}:{mm}", null, 1],
  ];

  function percent(v) { return v === null || v === undefined ? "--" : Number((100 * v).toPrecision(3)) + "%"; }
  function number(v) { return Number(v.toPrecision(3)).toLocaleString("en-US", {maximumFractionDigits: 12}); }

  function markGroups(u, events) {
    const width = u.bbox.width / (window.devicePixelRatio || 1), groups = [];
    events.forEach(function (ev) {
      const x = u.valToPos(ev.at, "x");
      if (!(x >= 0 && x <= width)) return;
      const last = groups[groups.length - 1];
      if (last && x - last.x < MARK_GAP) last.events.push(ev); else groups.push({x: x, events: [ev]});
    });
    return groups;
  }

  function markText(ev) { return ev.time + " UTC  " + ev.label + (ev.text ? " — " + ev.text : ""); }

  function eventMarks(el, events) {
    let layer = null, tip = null;
    function show(marker, group) {
      tip.textContent = "";
      group.events.slice(0, TIP_LINES).forEach(function (ev) {
        const line = document.createElement("div");
        line.textContent = markText(ev);
        line.style.borderLeftColor = ev.colour;
        tip.appendChild(line);
      });
      if (group.events.length > TIP_LINES) {
        const more = document.createElement("p");
        more.className = "muted";
        more.textContent = "and " + (group.events.length - TIP_LINES) + " more: the events table lists them all";
        tip.appendChild(more);
      }
      tip.hidden = false;
      const box = el.getBoundingClientRect(), at = marker.getBoundingClientRect();
      tip.style.top = (at.bottom - box.top + 4) + "px";
      tip.style.left = Math.max(0, Math.min(at.left - box.left - 8, el.clientWidth - tip.offsetWidth)) + "px";
    }
    function hide() { tip.hidden = true; }
    return {hooks: {
      init: [function (u) {
        layer = document.createElement("div");
        layer.className = "marks";
        u.over.appendChild(layer);
        tip = document.createElement("div");
        tip.className = "mark-tip";
        tip.hidden = true;
        el.appendChild(tip);
      }],
      draw: [function (u) {
        const ctx = u.ctx, dpr = window.devicePixelRatio || 1, groups = markGroups(u, events);
        ctx.save();  // a faint line across the plot for each mark; what it was is under the axis, not on the lines
        ctx.globalAlpha = 0.55;
        ctx.lineWidth = dpr;
        ctx.setLineDash([4 * dpr, 3 * dpr]);
        groups.forEach(function (g) {
          g.events.forEach(function (ev) {
            const x = Math.round(u.valToPos(ev.at, "x", true));
            ctx.strokeStyle = ev.colour;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          });
        });
        ctx.restore();
        layer.textContent = "";
        groups.forEach(function (g) {
          const marker = document.createElement("span");
          const kinds = new Set(g.events.map(function (ev) { return ev.colour; }));
          marker.className = "mark" + (g.events.length > 1 ? " many" : "");
          marker.style.left = g.x + "px";
          marker.style.background = kinds.size === 1 ? g.events[0].colour : "#455a64";
          marker.textContent = g.events.length > 1 ? String(g.events.length) : "";
          marker.tabIndex = 0;
          marker.dataset.count = String(g.events.length);
          marker.setAttribute("role", "img");
          marker.setAttribute("aria-label", g.events.map(markText).join("; "));
          marker.addEventListener("mouseenter", function () { show(marker, g); });
          marker.addEventListener("focus", function () { show(marker, g); });
          marker.addEventListener("mouseleave", hide);
          marker.addEventListener("blur", hide);
          marker.addEventListener("mousedown", function (e) { e.stopPropagation(); });  // not a zoom drag
          layer.appendChild(marker);
        });
        el.dataset.marks = String(groups.reduce(function (n, g) { return n + g.events.length; }, 0));
      }],
    }};
  }

  function valueAxis(spec, opts) {
    if (!spec.y) return;
    opts.scales.y = {range: function () { return [spec.y.min, spec.y.max]; }};
    if (spec.y.percent) {
      opts.axes[1].values = function (u, splits) { return splits.map(percent); };
      opts.series.forEach(function (s, i) { if (i > 0) s.value = function (u, v) { return percent(v); }; });
    }
  }

  function timeOptions(spec, width, el) {
    const xs = spec.x.concat(spec.events.map(function (e) { return e.at; }));
    let lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    if (hi - lo < 1) { lo -= 30; hi += 30; }
    const few = spec.x.length < 80;
    const opts = {
      width: width, height: 230, tzDate: utc, plugins: [eventMarks(el, spec.events)],
      scales: {x: {time: true, range: [lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03]}},
      // the x axis leaves a band under the plot for the event markers
      axes: [{values: TIME_TICKS, space: 70, ticks: {size: 4}, gap: 16, size: 64}, {label: spec.unit, size: 60}],
      series: [{label: "UTC", value: function (u, v) { return v === null ? "--" : stamp(utc(v)); }}].concat(
        spec.series.map(function (s, i) {
          return {label: s.label, stroke: s.dash ? "#999" : PALETTE[i % PALETTE.length], width: 1.5,
                  dash: s.dash ? [6, 4] : undefined, spanGaps: true, points: {show: few && !s.dash, size: 5}};
        })),
    };
    valueAxis(spec, opts);
    return opts;
  }

  function histogramOptions(spec, width) {
    const categorical = spec.kind === "categorical" || spec.kind === "categories";
    const opts = {
      width: width, height: 260,
      scales: {x: {time: false}, y: {range: function (u, min, max) { return [0, max * 1.1 || 1]; }}},
      axes: [{}, {label: spec.unit, size: 60}],
      series: [{}].concat(spec.series.map(function (s, i) {
        const colour = PALETTE[i % PALETTE.length];
        return {label: s.label, stroke: colour, fill: colour + "40", width: 1.5,
                paths: categorical ? uPlot.paths.bars({size: [0.4, 80], align: i === 0 ? -1 : 1})
                                   : uPlot.paths.stepped({align: 1}),
                points: {show: false}};
      })),
    };
    valueAxis(spec, opts);
    if (!categorical) {  // the last point repeats the last bin's share to close its step: not a bin of its own
      opts.series.forEach(function (s, i) {
        if (i === 0) return;
        const shown = s.value || function (u, v) { return v === null ? "--" : String(v); };
        s.value = function (u, v, si, idx) { return idx === spec.x.length - 1 ? "--" : shown(u, v, si, idx); };
      });
    }
    if (categorical) {
      const cats = spec.categories || [];
      opts.scales.x.range = [-0.6, cats.length - 0.4];
      opts.axes[0] = {splits: function () { return cats.map(function (_, i) { return i; }); },
                      values: function (u, splits) { return splits.map(function (v) { return cats[v] === undefined ? "" : cats[v]; }); }};
    } else if (spec.kind === "quantiles") {  // bins of equal reference mass, drawn equally wide; ticks at their edges
      const edges = spec.edges, last = edges.length - 1;
      opts.scales.x.range = [0, last];
      opts.axes[0] = {
        label: "value (bin edges: each bin holds 1/" + last + " of the reference)", labelSize: 20,
        splits: function (u) {
          const room = u.bbox.width / (window.devicePixelRatio || 1);
          const every = Math.max(1, Math.ceil(edges.length * 64 / room)), out = [];
          for (let i = 0; i <= last; i += every) out.push(i);
          if (out[out.length - 1] !== last) {  // the last edge always, in place of a tick too close to it
            if (last - out[out.length - 1] < every) out.pop();
            out.push(last);
          }
          return out;
        },
        values: function (u, splits) { return splits.map(function (i) { return number(edges[i]); }); },
      };
      opts.series[0] = {label: "bin", value: function (u, i) {
        return i === null || i >= last ? "--" : number(edges[i]) + " to " + number(edges[i + 1]);
      }};
    }
    return opts;
  }

  function renderCharts(root) {
    root.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      const spec = JSON.parse(el.getAttribute("data-chart"));
      if (el._plot) el._plot.destroy();  // uPlot keeps window listeners until destroyed
      el.textContent = "";
      const width = Math.max(280, el.clientWidth || 600);
      const opts = spec.kind === "time" ? timeOptions(spec, width, el) : histogramOptions(spec, width);
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
