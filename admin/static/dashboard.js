// Dashboard charts of the inquiry bot's admin view (admin/templates/inquiry_dashboard.html).
// Each <section data-query=NAME> fetches NAME's canned-query JSON from datasette and is drawn
// as inline SVG: no library, nothing loaded from elsewhere. data-draw picks the chart:
//   stacked  bars along data-x, stacked by the values of column data-stack (data-value is
//            the count) or by several count columns (data-values), summed per x;
//   bars     grouped bars, one group per data-x, one bar per column in data-values;
//   table    the rows as a table (columns in data-columns).
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const WIDTH = 560, HEIGHT = 220, LEFT = 40, BOTTOM = 40, TOP = 10;

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function html(name, attrs, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function unique(values) {
    return [...new Set(values)];
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const factor of [1, 2, 5, 10]) if (factor * step >= value) return factor * step;
    return 10 * step;
  }

  // Series as {name, values[]} over the x labels, whichever way the chart is declared.
  function seriesOf(rows, spec) {
    let xs = unique(rows.map(r => String(r[spec.x])));
    if (spec.draw === "stacked") xs = xs.sort().slice(-26);  // weeks or months, oldest first
    // null (nothing measured, e.g. no completed ticket yet) stays null: no bar, no figure
    const sum = (name, pick) => xs.map(x => rows.filter(r => String(r[spec.x]) === x)
      .map(pick).filter(v => v !== null && v !== undefined)
      .reduce((total, v) => (total || 0) + (Number(v) || 0), null));
    if (spec.stack) {
      const names = unique(rows.map(r => String(r[spec.stack]))).sort();
      return {xs, series: names.map(name => ({
        name, values: sum(name, r => String(r[spec.stack]) === name ? r[spec.value] : 0)}))};
    }
    return {xs, series: spec.values.map(name => ({name, values: sum(name, r => r[name])}))};
  }

  function axes(svg, top, plotWidth, unit) {
    const plotHeight = HEIGHT - TOP - BOTTOM;
    for (const share of [0, 0.5, 1]) {
      const y = TOP + plotHeight * (1 - share);
      svg.append(el("line", {x1: LEFT, x2: LEFT + plotWidth, y1: y, y2: y, class: "ib-grid"}));
      svg.append(el("text", {x: LEFT - 4, y: y + 4, "text-anchor": "end", class: "ib-tick"},
        String(Math.round(top * share * 10) / 10) + (unit || "")));
    }
    return plotHeight;
  }

  function xLabel(svg, x, text, count) {
    const label = count > 8 ? text.slice(5) : text;  // weeks/months: drop the year when crowded
    svg.append(el("text", {x, y: HEIGHT - BOTTOM + 14, "text-anchor": "middle",
                           class: "ib-tick"}, label));
  }

  function draw(spec, rows) {
    const {xs, series} = seriesOf(rows, spec);
    const svg = el("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "ib-svg",
                           role: "img", "data-chart": spec.query});
    const plotWidth = WIDTH - LEFT - 10;
    const slot = plotWidth / Math.max(xs.length, 1);
    const stacked = spec.draw === "stacked";
    const totals = xs.map((_, i) => stacked
      ? series.reduce((t, s) => t + (s.values[i] || 0), 0)
      : Math.max(0, ...series.map(s => s.values[i] || 0)));
    const top = niceMax(Math.max(0, ...totals));
    const plotHeight = axes(svg, top, plotWidth, spec.unit);
    xs.forEach((x, i) => {
      let base = 0;
      series.forEach((s, k) => {
        const value = s.values[i];
        if (value === null) return;
        const h = plotHeight * value / top;
        const width = stacked ? slot * 0.7 : slot * 0.8 / series.length;
        const left = LEFT + slot * i + slot * 0.1 + (stacked ? slot * 0.05 : width * k);
        const y = TOP + plotHeight - h - (stacked ? plotHeight * base / top : 0);
        if (value > 0) {
          const bar = el("rect", {x: left, y, width, height: h, fill: PALETTE[k % 10],
                                  class: "ib-bar"});
          bar.append(el("title", {}, `${x} · ${s.name}: ${value}${spec.unit || ""}`));
          svg.append(bar);
        }
        if (!stacked) {  // grouped bars carry their figure (a 0 h bar is still a figure)
          svg.append(el("text", {x: left + width / 2, y: y - 3, "text-anchor": "middle",
                                 class: "ib-tick ib-value"}, String(value)));
        }
        base += stacked ? value : 0;
      });
      xLabel(svg, LEFT + slot * i + slot / 2, x, xs.length);
    });
    return [svg, legend(series)];
  }

  function legend(series) {
    const list = html("p", {class: "ib-legend"});
    series.forEach((s, k) => {
      const item = html("span", {class: "ib-key"});
      item.append(html("i", {style: `background:${PALETTE[k % 10]}`}), s.name.replace(/_/g, " "));
      list.append(item);
    });
    return list;
  }

  function table(spec, rows) {
    const out = html("table", {class: "rows-and-columns ib-table", "data-chart": spec.query});
    const head = html("tr");
    spec.columns.forEach(c => head.append(html("th", {}, c.replace(/_/g, " "))));
    const thead = html("thead");
    thead.append(head);
    out.append(thead);
    const body = html("tbody");
    rows.forEach(r => {
      const tr = html("tr");
      spec.columns.forEach(c => tr.append(html("td", {class: `col-${c}`},
        r[c] === null ? "" : String(r[c]) + (c.endsWith("_percent") ? " %" : ""))));
      body.append(tr);
    });
    out.append(body);
    return [out];
  }

  function specOf(section) {
    const data = section.dataset;
    const list = name => (data[name] || "").split(",").filter(Boolean);
    return {query: data.query, draw: data.draw, x: data.x, stack: data.stack,
            value: data.value, values: list("values"), columns: list("columns"),
            unit: data.unit || ""};
  }

  function note(rows, spec) {
    if (spec.query === "response_times" && rows.length && !rows[0].completion_recorded) {
      return html("p", {class: "ib-note"}, "Completion is not recorded in this database " +
        "yet (no tickets.completed_at): only the time to first response is shown.");
    }
    return null;
  }

  async function fill(section, base) {
    const spec = specOf(section);
    const plot = section.querySelector(".ib-plot");
    try {
      const response = await fetch(`${base}/${spec.query}.json?_shape=objects&_size=max`,
                                   {credentials: "same-origin"});
      const data = await response.json();
      if (!response.ok || data.ok === false) throw new Error(data.error || response.status);
      const rows = data.rows || [];
      if (!rows.length) {
        plot.append(html("p", {class: "ib-empty"}, "No data yet."));
      } else {
        plot.append(...(spec.draw === "table" ? table(spec, rows) : draw(spec, rows)));
      }
      const extra = note(rows, spec);
      if (extra) plot.append(extra);
    } catch (error) {
      plot.append(html("p", {class: "message-error"}, `Could not load ${spec.query}: ${error}`));
    }
    section.setAttribute("data-drawn", "1");
  }

  const charts = document.querySelector(".ib-charts");
  if (charts) {
    const base = charts.dataset.base;
    Promise.all([...charts.querySelectorAll("[data-query]")].map(s => fill(s, base)))
      .then(() => charts.setAttribute("data-ready", "1"));
  }
})();
