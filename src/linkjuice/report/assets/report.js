/* linkjuice report and dashboard: charts, the site graph, tables and the page drill-down.
 *
 * Crawled text (titles, anchors, URLs) is only ever put in the page with textContent or as an
 * attribute value set through the DOM, never through innerHTML, so markup in it stays text.
 * In the static report every table's rows are in the lj-data block; in the dashboard
 * (data-mode="live") tables are fetched a page at a time from the server's own API.
 */
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("lj-data").textContent);
  const LIVE = DATA.mode === "live";
  const ORIGIN = (function () {
    try { return new URL(DATA.meta.start_url).origin; } catch (e) { return null; }
  })();
  const PALETTE = ["#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#1f77b4",
                   "#17becf", "#8c564b", "#bcbd22", "#6b6ecf", "#637939"];
  const OTHER = "#c5c9cf", BROKEN = "#d62728", REDIRECT = "#ff7f0e", ORPHAN = "#e377c2";
  const FLAG = { orphan: 1, broken: 2, redirect: 4, notIndexable: 8 };

  // -- small helpers ---------------------------------------------------------------------------
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null) continue;
        if (key === "text") node.textContent = value;
        else if (key === "class") node.className = value;
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value);
      }
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function shortUrl(url) {
    if (typeof url !== "string") return url;
    return ORIGIN && url.startsWith(ORIGIN + "/") ? url.slice(ORIGIN.length) : url;
  }

  const SCI = new Set(["juice", "juice_at_stake", "pagerank", "predicted_gain", "old_juice", "new_juice", "weight"]);
  const PCT = new Set(["share"]);
  const FIXED1 = new Set(["juice_score", "gain_pct", "old_score", "new_score", "score_change",
                          "source_juice_score", "target_juice_score"]);
  const URLS = new Set(["url", "source_url", "target_url", "resolved_url", "page"]);
  const LONG = new Set(["explanation", "fix", "context", "title", "detail"]);

  function format(column, value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number") {
      if (SCI.has(column)) return value === 0 ? "0" : value.toPrecision(3);
      if (PCT.has(column)) return (100 * value).toFixed(1) + "%";
      if (FIXED1.has(column)) return value.toFixed(1);
      if (column === "relevance") return value.toFixed(2);
      return Number.isInteger(value) ? value.toLocaleString("en") : value.toPrecision(4);
    }
    return URLS.has(column) ? shortUrl(String(value)) : String(value);
  }

  function compare(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;  // missing values last in both directions
    if (b === null || b === undefined) return -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function csvCell(value) {
    if (value === null || value === undefined) return "";
    let text = String(value);
    // A cell starting like a formula would run in a spreadsheet (CSV injection): make it text.
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  async function getJSON(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    const response = await fetch(path + (query ? "?" + query : ""), { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  // -- tables ----------------------------------------------------------------------------------
  class DataTable {
    /* spec: {columns, rows?, total?, facets?}; options: {name, fixed (exact filters), pageSize,
       onRow(record), live (fetch from the API), sort, desc} */
    constructor(root, spec, options) {
      this.root = root;
      this.spec = spec;
      this.options = options || {};
      this.columns = spec.columns;
      this.pageSize = this.options.pageSize || 50;
      this.state = { q: "", eq: Object.assign({}, this.options.fixed || {}), sort: this.options.sort || null,
                     desc: this.options.desc === undefined ? null : this.options.desc, offset: 0 };
      this.build();
      this.refresh();
    }

    build() {
      const name = this.options.name || "table";
      this.search = el("input", { type: "search", placeholder: "Filter rows...", "aria-label": "Filter " + name,
                                  "data-filter": name });
      let timer = null;
      this.search.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => { this.state.q = this.search.value.trim(); this.state.offset = 0; this.refresh(); },
                           LIVE ? 250 : 80);
      });
      const tools = [this.search];
      for (const [column, values] of Object.entries(this.spec.facets || {})) {
        if (!values.length || this.state.eq[column] !== undefined) continue;
        const select = el("select", { "aria-label": column, "data-facet": column },
          [el("option", { value: "", text: "any " + column })].concat(
            values.map((v) => el("option", { value: String(v), text: String(v) }))));
        select.addEventListener("change", () => {
          if (select.value) this.state.eq[column] = select.value; else delete this.state.eq[column];
          this.state.offset = 0;
          this.refresh();
        });
        tools.push(select);
      }
      this.count = el("span", { class: "count" });
      tools.push(this.count, el("button", { type: "button", text: "Download CSV", onclick: () => this.download() }));
      this.head = el("tr");
      this.columns.forEach((column) => {
        const th = el("th", { class: "sortable", text: column.replace(/_/g, " "), scope: "col" });
        th.addEventListener("click", () => {
          if (this.state.sort === column) this.state.desc = !this.state.desc;
          else { this.state.sort = column; this.state.desc = false; }
          this.state.offset = 0;
          this.refresh();
        });
        this.head.append(th);
      });
      this.body = el("tbody");
      this.prev = el("button", { type: "button", text: "Previous", onclick: () => this.turn(-1) });
      this.next = el("button", { type: "button", text: "Next", onclick: () => this.turn(1) });
      this.where = el("span");
      this.root.replaceChildren(
        el("div", { class: "toolbar" }, tools),
        el("div", { class: "scroll" }, [el("table", { class: "grid", "data-name": name },
                                           [el("thead", null, [this.head]), this.body])]),
        el("div", { class: "pager" }, [this.prev, this.next, this.where]));
    }

    turn(step) {
      this.state.offset = Math.max(0, this.state.offset + step * this.pageSize);
      this.refresh();
    }

    matching() {
      const q = this.state.q.toLowerCase();
      const eq = Object.entries(this.state.eq).map(([c, v]) => [this.columns.indexOf(c), String(v)]);
      let rows = this.spec.rows.filter((row) =>
        eq.every(([i, v]) => i < 0 || String(row[i]) === v) &&
        (!q || row.some((cell) => cell !== null && String(cell).toLowerCase().includes(q))));
      if (this.state.sort) {
        const i = this.columns.indexOf(this.state.sort);
        const sign = this.state.desc ? -1 : 1;
        rows = rows.slice().sort((a, b) => {
          const c = compare(a[i], b[i]);
          return a[i] === null || b[i] === null ? c : sign * c;
        });
      }
      return rows;
    }

    params(paging) {
      const p = {};
      if (this.state.q) p.q = this.state.q;
      if (this.state.sort) { p.sort = this.state.sort; p.order = this.state.desc ? "desc" : "asc"; }
      for (const [c, v] of Object.entries(this.state.eq)) p["f." + c] = v;
      if (paging) { p.offset = this.state.offset; p.limit = this.pageSize; }
      return p;
    }

    async refresh() {
      let rows, total;
      if (this.options.live) {
        try {
          const answer = await getJSON("api/table/" + this.options.name, this.params(true));
          rows = answer.rows; total = answer.total;
        } catch (error) {
          this.count.textContent = String(error.message);
          return;
        }
      } else {
        const all = this.matching();
        total = all.length;
        rows = all.slice(this.state.offset, this.state.offset + this.pageSize);
      }
      this.render(rows, total);
    }

    render(rows, total) {
      const start = total ? this.state.offset + 1 : 0, end = this.state.offset + rows.length;
      const held = this.spec.total;
      this.count.textContent = total.toLocaleString("en") + " rows" +
        (!this.options.live && this.spec.truncated ? " (of the " + this.spec.rows.length.toLocaleString("en") +
         " in this file; " + held.toLocaleString("en") + " in the crawl)" : "");
      this.where.textContent = start + "\u2013" + end + " of " + total.toLocaleString("en");
      this.prev.disabled = this.state.offset === 0;
      this.next.disabled = end >= total;
      this.head.childNodes.forEach((th, i) => {
        const column = this.columns[i];
        th.setAttribute("aria-sort", this.state.sort === column ? (this.state.desc ? "descending" : "ascending") : "none");
      });
      const onRow = this.options.onRow;
      this.body.replaceChildren(...rows.map((row) => {
        const record = Object.fromEntries(this.columns.map((c, i) => [c, row[i]]));
        const tr = el("tr", onRow ? { class: "clickable" } : null, row.map((cell, i) => {
          const column = this.columns[i];
          const cls = (typeof cell === "number" ? "num" : URLS.has(column) ? "url" : LONG.has(column) ? "long" : "") +
                      (column === "severity" ? " sev-" + cell : "");
          return el("td", { class: cls.trim() || null, title: URLS.has(column) && cell ? String(cell) : null,
                            text: format(column, cell) });
        }));
        if (onRow) tr.addEventListener("click", () => {
          this.body.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
          tr.classList.add("selected");
          onRow(record);
        });
        return tr;
      }));
    }

    download() {
      const name = (this.options.name || "table") + ".csv";
      if (this.options.live) {
        const a = el("a", { href: "api/table/" + this.options.name + ".csv?" +
                                  new URLSearchParams(this.params(false)).toString(), download: name });
        document.body.append(a); a.click(); a.remove();
        return;
      }
      const lines = [this.columns.map(csvCell).join(",")].concat(
        this.matching().map((row) => row.map(csvCell).join(",")));
      const url = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
      const a = el("a", { href: url, download: name });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    }
  }

  // -- the page drill-down -----------------------------------------------------------------------
  const PAGES = {};
  if (DATA.tables.pages && !LIVE) {
    const cols = DATA.tables.pages.columns;
    for (const row of DATA.tables.pages.rows) PAGES[row[0]] = Object.fromEntries(cols.map((c, i) => [c, row[i]]));
  }
  const FLOWS = { in: {}, out: {} };
  if (DATA.drilldown) {
    const urls = DATA.drilldown.urls;
    for (const [dir, page, source, target, resolved, anchor, position, share, juice, reason] of DATA.drilldown.rows) {
      const list = (FLOWS[dir][urls[page]] = FLOWS[dir][urls[page]] || []);
      list.push({ source_url: urls[source], target_url: urls[target], resolved_url: resolved === null ? null : urls[resolved],
                  anchor, position, share, juice, reason });
    }
  }

  const drill = document.getElementById("drill");
  document.getElementById("drill-close").addEventListener("click", () => { drill.hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") drill.hidden = true; });

  function flowTable(root, rows, columns, go) {
    new DataTable(root, { columns, rows: rows.map((r) => columns.map((c) => r[c] === undefined ? null : r[c])) },
                  { name: "flows", pageSize: 15, onRow: (r) => showPage(go(r)) });
  }

  async function showPage(url) {
    if (!url) return;
    let page = PAGES[url], sources = FLOWS.in[url], sends = FLOWS.out[url], note = "";
    if (LIVE) {
      try {
        const answer = await getJSON("api/page", { url, limit: 50 });
        page = answer.page; sources = answer.sources; sends = answer.sends;
      } catch (error) { note = String(error.message); }
    } else if (sources === undefined && sends === undefined) {
      note = "The links of this page are not in this file (it holds the " + DATA.limits.drilldown_pages.toLocaleString("en") +
             " strongest pages); linkjuice serve or linkjuice explain show them.";
    } else {
      note = "The " + DATA.limits.per_page + " strongest sources and links of each page are in this file.";
    }
    page = page || { url };
    document.getElementById("drill-title").textContent = page.title || shortUrl(url);
    document.getElementById("drill-url").textContent = url;
    const facts = document.getElementById("drill-facts");
    facts.replaceChildren(...["status", "indexability", "depth", "section", "inlinks", "outlinks", "juice_score", "juice"]
      .filter((k) => page[k] !== undefined)
      .map((k) => el("tr", null, [el("th", { text: k.replace(/_/g, " ") }), el("td", { text: format(k, page[k]) || "-" })])));
    flowTable(document.getElementById("drill-in"), sources || [], ["source_url", "anchor", "position", "juice", "share"],
              (r) => r.source_url);
    flowTable(document.getElementById("drill-out"), sends || [], ["target_url", "resolved_url", "anchor", "reason", "juice"],
              (r) => r.resolved_url || r.target_url);
    document.getElementById("drill-note").textContent = note;
    drill.hidden = false;
  }

  document.querySelectorAll("#top-pages tr[data-url]").forEach((tr) => {
    tr.addEventListener("click", () => showPage(tr.dataset.url));
  });

  // -- tables of the page ----------------------------------------------------------------------
  function tableOptions(name) {
    return { name, live: LIVE, onRow: name === "pages" ? (r) => showPage(r.url) : null };
  }
  let itemsTable = null;
  document.querySelectorAll("[data-table]").forEach((root) => {
    const name = root.dataset.table;
    const spec = DATA.tables[name];
    if (!spec || name === "finding_items") return;
    const options = tableOptions(name);
    if (name === "findings") {
      options.onRow = (finding) => {
        const box = document.getElementById("finding-items");
        box.hidden = false;
        document.getElementById("finding-items-title").textContent =
          "Finding " + finding.finding_id + ": " + finding.code + " \u2014 " + shortUrl(finding.url || "");
        itemsTable = new DataTable(box.querySelector("[data-table]"), DATA.tables.finding_items,
          { name: "finding_items", live: LIVE, fixed: { finding_id: finding.finding_id }, pageSize: 20,
            onRow: (item) => showPage(item.source_url || item.url) });
      };
    }
    if (name === "suggestions") options.onRow = (s) => showPage(s.target_url);
    new DataTable(root, spec, options);
  });

  // -- charts ----------------------------------------------------------------------------------
  const esc = echarts.format.encodeHTML;  // tooltips are HTML: escape every crawled string
  function chart(id, option) {
    const node = document.getElementById(id);
    if (!node) return null;
    const instance = echarts.init(node, null, { renderer: "canvas" });
    instance.setOption(option);
    window.addEventListener("resize", () => instance.resize());
    return instance;
  }

  const hist = DATA.histogram;
  chart("chart-hist", {
    grid: { left: 50, right: 20, top: 20, bottom: 50 },
    tooltip: { trigger: "axis", formatter: (items) => esc(items[0].name) + "<br>" + items[0].value + " pages" },
    xAxis: { type: "category", name: "juice (bins of equal width on a log scale)", nameLocation: "middle", nameGap: 32,
             data: hist.counts.map((_, i) => Math.pow(10, hist.edges[i]).toPrecision(2) + "\u2013" +
                                            Math.pow(10, hist.edges[i + 1]).toPrecision(2)) },
    yAxis: { type: "value", name: "pages", minInterval: 1 },
    series: [{ type: "bar", data: hist.counts, itemStyle: { color: "#4e79a7" }, barCategoryGap: "8%" }],
  });

  chart("chart-depth", {
    grid: { left: 50, right: 50, top: 30, bottom: 40 },
    legend: { data: ["share of juice", "median score"], top: 0 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", name: "depth", data: DATA.depth.map((d) => d.depth === null ? "none" : String(d.depth)) },
    yAxis: [{ type: "value", name: "share", axisLabel: { formatter: (v) => Math.round(v * 100) + "%" } },
            { type: "value", name: "score", max: 100 }],
    series: [
      { name: "share of juice", type: "bar", data: DATA.depth.map((d) => +d.juice_share.toFixed(4)), itemStyle: { color: "#59a14f" } },
      { name: "median score", type: "line", yAxisIndex: 1, data: DATA.depth.map((d) => d.median_score === null ? null : +d.median_score.toFixed(1)) },
    ],
  });

  const sankey = DATA.sankey;
  const sankeyTotal = sankey.links.reduce((s, l) => s + l.value, 0) || 1;
  chart("chart-sankey", sankey.nodes.length ? {
    tooltip: { trigger: "item", formatter: (p) => p.dataType === "edge"
      ? esc(p.data.source) + " \u2192 " + esc(p.data.target) + "<br>" + (100 * p.data.value / sankeyTotal).toFixed(1) +
        "% of juice, " + p.data.links + " links"
      : esc(p.name) },
    series: [{ type: "sankey", left: 10, right: 170, top: 10, bottom: 10, nodeGap: 6, layoutIterations: 0,
               emphasis: { focus: "adjacency" }, lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.35 },
               label: { fontSize: 11 },
               data: sankey.nodes.map((name) => ({ name, itemStyle: { color: name.includes("(lost") ? BROKEN : undefined } })),
               links: sankey.links }],
  } : { title: { text: "No juice flows: the crawl is not scored", left: "center", top: "middle",
                 textStyle: { color: "#5f6b7a", fontSize: 14 } } });

  // -- the site graph --------------------------------------------------------------------------
  const G = DATA.graph;
  const sectionColour = (i) => i < PALETTE.length && G.sections[i] !== "(other sections)" ? PALETTE[i] : OTHER;
  function baseColour(i) {
    const f = G.flags[i];
    if (f & FLAG.broken) return BROKEN;
    if (f & FLAG.redirect) return REDIRECT;
    if (f & FLAG.orphan) return ORPHAN;
    return sectionColour(G.section[i]);
  }
  const legend = document.getElementById("graph-legend");
  legend.replaceChildren(...G.sections.map((name, i) => el("span", null, [el("i", { style: "background:" + sectionColour(i) }), name]))
    .concat([["broken", BROKEN], ["redirect", REDIRECT], ["orphan", ORPHAN]].map(([name, colour]) =>
      el("span", null, [el("i", { style: "background:" + colour }), name]))));

  const container = document.getElementById("graph-canvas");
  const graph = new graphology.DirectedGraph();
  G.url.forEach((url, i) => graph.addNode(String(i), {
    x: G.x[i], y: G.y[i], size: G.size[i], color: baseColour(i),
    label: G.title[i] ? shortUrl(url) + " \u2014 " + G.title[i] : shortUrl(url),
  }));
  G.edges.forEach(([s, t, passes]) => {
    if (!graph.hasEdge(String(s), String(t))) {
      graph.addEdge(String(s), String(t), { size: 0.6, color: passes ? "rgba(70,80,95,0.35)" : "rgba(214,39,40,0.5)" });
    }
  });
  const view = { mark: 0, found: null, hovered: null, neighbours: null };
  const renderer = new Sigma(graph, container, {
    defaultEdgeType: "arrow", labelRenderedSizeThreshold: 9, labelSize: 11, zIndex: true,
    nodeReducer(node, data) {
      const i = Number(node);
      const out = Object.assign({}, data);
      const dim = (view.mark && !(G.flags[i] & view.mark)) ||
                  (view.neighbours && node !== view.hovered && !view.neighbours.has(node));
      if (dim) { out.color = "#e3e6ea"; out.label = ""; out.zIndex = 0; } else { out.zIndex = 1; }
      if (view.found === node) { out.highlighted = true; out.zIndex = 2; }
      return out;
    },
    edgeReducer(edge, data) {
      if (view.hovered && !graph.extremities(edge).includes(view.hovered)) return Object.assign({}, data, { hidden: true });
      if (view.mark) return Object.assign({}, data, { hidden: true });
      return data;
    },
  });

  const tip = document.getElementById("graph-tip");
  renderer.on("enterNode", ({ node, event }) => {
    const i = Number(node);
    view.hovered = node;
    view.neighbours = new Set(graph.neighbors(node));
    const flags = Object.entries(FLAG).filter(([, bit]) => G.flags[i] & bit).map(([name]) => name).join(", ");
    tip.replaceChildren(el("b", { text: G.title[i] || "(no title)" }), el("br"), document.createTextNode(G.url[i]),
      el("br"), document.createTextNode("juice score " + (G.score[i] === null ? "-" : G.score[i].toFixed(1)) +
        (flags ? " \u00b7 " + flags : "")));
    const mouse = event && event.original;
    if (mouse) { tip.style.left = (mouse.clientX + 14) + "px"; tip.style.top = (mouse.clientY + 14) + "px"; }
    tip.hidden = false;
    renderer.refresh({ skipIndexation: true });
  });
  renderer.on("leaveNode", () => {
    view.hovered = null; view.neighbours = null; tip.hidden = true;
    renderer.refresh({ skipIndexation: true });
  });
  renderer.on("clickNode", ({ node }) => showPage(G.url[Number(node)]));

  document.getElementById("graph-mark").addEventListener("change", (e) => {
    view.mark = Number(e.target.value);
    renderer.refresh({ skipIndexation: true });
  });
  const find = document.getElementById("graph-find");
  find.addEventListener("change", () => {
    const q = find.value.trim().toLowerCase();
    const i = q ? G.url.findIndex((u) => u.toLowerCase().includes(q)) : -1;
    view.found = i >= 0 ? String(i) : null;
    renderer.refresh({ skipIndexation: true });
    if (i >= 0) {
      const p = renderer.getNodeDisplayData(String(i));
      renderer.getCamera().animate({ x: p.x, y: p.y, ratio: 0.35 }, { duration: 400 });
    }
  });

  window.linkjuice = { DATA, renderer, showPage };  // for the tests and the curious
})();
