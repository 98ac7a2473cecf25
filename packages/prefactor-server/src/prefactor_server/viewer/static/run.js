// The run page: a virtual span tree with an aligned timeline, and the selected span's
// detail. Loads the whole tree once as compact columns (GET /viewer/api/runs/<id>/tree),
// renders only the rows in view, fetches a span's payloads when it is selected, and
// polls for changes while the run is live. No framework, no build step, no eval.
(function () {
  "use strict";
  var ROW = 24, OVERSCAN = 12, POLL_MS = 2000;
  var MARKS = { complete: "✓", failed: "✗", cancelled: "⊘", active: "●", pending: "·", terminated: "■" };
  var view = document.getElementById("run-view");
  if (!view) return;
  var runId = view.dataset.run;
  var api = "/viewer/api/runs/" + encodeURIComponent(runId);
  var $ = function (id) { return document.getElementById(id); };
  var viewport = $("viewport"), spacer = $("spacer"), rowsEl = $("rows"), axisEl = $("axis");
  var statusEl = $("tree-status"), detail = $("detail");

  // Columns (span index i) and the layout derived from them.
  var d = null, idIndex = null;
  var order = [], depth = null, size = null, kids = null, subTok = null, subCost = null;
  var collapsed = new Set(), keep = null, zoom = -1, vis = [], sel = -1;
  var win0 = 0, win1 = 1, pool = [], searchSeq = 0, detailCtl = null, hits = [];
  var serverHits = { text: null, ids: null };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmtDur(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(2) + " s";
    var m = Math.floor(s / 60);
    return m + "m " + String(Math.round(s - m * 60)).padStart(2, "0") + "s";
  }
  function fmtNum(n) { return n ? n.toLocaleString("en-US") : "–"; }
  function fmtCost(c) {
    if (!c) return "–";
    return "$" + (c >= 1 ? c.toFixed(2) : c >= 0.001 ? c.toFixed(4) : c.toPrecision(2));
  }
  function nowMs() { return Date.now() - Date.parse(d.t0); }
  function status(i) { return d.statuses[d.status[i]]; }
  function endOf(i) {
    if (d.end[i] !== null) return d.end[i];
    return d.start[i] === null ? null : Math.max(nowMs(), d.start[i]);
  }

  // -- layout: sibling order, depth, subtree sizes and totals ---------------------------
  function layout() {
    var n = d.n, i;
    kids = new Array(n);
    var roots = [];
    for (i = 0; i < n; i++) {
      var p = d.parent[i];
      if (p < 0 || p === i) roots.push(i);
      else (kids[p] || (kids[p] = [])).push(i);
    }
    var byStart = function (a, b) {
      var sa = d.start[a], sb = d.start[b];
      if (sa === null) sa = Infinity;
      if (sb === null) sb = Infinity;
      return sa - sb || (d.id[a] < d.id[b] ? -1 : 1);
    };
    roots.sort(byStart);
    depth = new Int32Array(n); size = new Int32Array(n);
    subTok = new Float64Array(n); subCost = new Float64Array(n);
    order = [];
    var stack = roots.slice().reverse(), seen = new Uint8Array(n);
    while (stack.length) {
      i = stack.pop();
      if (seen[i]) continue; // a cycle in bad data: show each span once
      seen[i] = 1; order.push(i);
      var ch = kids[i];
      if (ch) {
        ch.sort(byStart);
        for (var k = ch.length - 1; k >= 0; k--) { depth[ch[k]] = depth[i] + 1; stack.push(ch[k]); }
      }
    }
    for (i = 0; i < n; i++) if (!seen[i]) { order.push(i); } // unreachable (cycles): at the end
    for (var q = order.length - 1; q >= 0; q--) {
      i = order[q];
      size[i] += 1; subTok[i] += d.tokens[i]; subCost[i] += d.cost[i];
      var par = d.parent[i];
      if (par >= 0 && par !== i && seen[par]) { size[par] += size[i]; subTok[par] += subTok[i]; subCost[par] += subCost[i]; }
    }
    d.pos = new Int32Array(n);
    for (q = 0; q < order.length; q++) d.pos[order[q]] = q;
  }

  function computeVisible() {
    var from = 0, to = order.length;
    if (zoom >= 0) { from = d.pos[zoom]; to = from + size[zoom]; }
    vis = [];
    for (var p = from; p < to;) {
      var i = order[p];
      if (keep && !keep[i]) { p++; continue; }
      vis.push(i);
      p += collapsed.has(i) && !keep ? size[i] : 1; // a filter shows every match, folded or not
    }
    // The time window: the zoomed span, else the whole run.
    var lo = Infinity, hi = -Infinity;
    var span = zoom >= 0 ? [zoom] : null;
    if (span) { lo = d.start[zoom]; hi = endOf(zoom); }
    else {
      for (var j = 0; j < d.n; j++) {
        if (d.start[j] !== null && d.start[j] < lo) lo = d.start[j];
        var e = endOf(j);
        if (e !== null && e > hi) hi = e;
      }
    }
    if (lo === null || !isFinite(lo)) lo = 0;
    if (hi === null || !isFinite(hi) || hi <= lo) hi = lo + 1;
    win0 = lo; win1 = hi;
    spacer.style.height = vis.length * ROW + "px";
    drawAxis();
    render();
  }

  function drawAxis() {
    axisEl.textContent = "";
    var w = win1 - win0, steps = [1, 2, 5], step = 1, k = 0;
    while (w / step > 4) { step = steps[k % 3] * Math.pow(10, Math.floor(k / 3)); k++; }
    for (var t = 0; t <= w + 1e-9; t += step) {
      var tick = el("span", "tick", fmtDur(t));
      tick.style.left = (t / w) * 100 + "%";
      axisEl.appendChild(tick);
    }
  }

  // -- rendering only the rows in view --------------------------------------------------
  function makeRow() {
    var row = el("div", "row");
    row.setAttribute("role", "treeitem");
    var name = el("span", "col-name");
    var tog = el("span", "tog"); tog.setAttribute("aria-hidden", "true");
    var dot = el("span", "dot");
    var label = el("span", "label");
    var type = el("span", "type");
    var sum = el("span", "sum");
    name.append(tog, dot, label, type, sum);
    var dur = el("span", "col-dur");
    var time = el("span", "col-time");
    var bar = el("span", "bar");
    time.appendChild(bar);
    row.append(name, dur, time);
    row._p = { name: name, tog: tog, dot: dot, label: label, type: type, sum: sum, dur: dur, bar: bar };
    rowsEl.appendChild(row);
    return row;
  }

  function render() {
    var top = viewport.scrollTop, height = viewport.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    var last = Math.min(vis.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    var need = last - first;
    while (pool.length < need) pool.push(makeRow());
    var w = win1 - win0;
    for (var r = 0; r < pool.length; r++) {
      var row = pool[r];
      if (r >= need) {
        if (!row.hidden) { row.hidden = true; row.removeAttribute("data-status"); row.removeAttribute("data-span"); row.removeAttribute("id"); }
        continue;
      }
      var i = vis[first + r], p = row._p, st = status(i);
      row.hidden = false;
      row.style.transform = "translateY(" + (first + r) * ROW + "px)";
      row.dataset.i = i;
      row.dataset.span = d.id[i];
      row.dataset.status = st;
      row.id = "row-" + d.id[i];
      row.className = "row" + (i === sel ? " selected" : "") + (st === "failed" ? " failed" : "");
      row.setAttribute("aria-level", String(depth[i] + 1));
      row.setAttribute("aria-selected", i === sel ? "true" : "false");
      var hasKids = !!kids[i];
      var folded = collapsed.has(i) && !keep;
      if (hasKids) row.setAttribute("aria-expanded", folded ? "false" : "true");
      else row.removeAttribute("aria-expanded");
      p.name.style.paddingLeft = 4 + (depth[i] - (zoom >= 0 ? depth[zoom] : 0)) * 14 + "px";
      p.tog.textContent = hasKids ? (folded ? "▸" : "▾") : "";
      p.dot.className = "dot status-" + st;
      p.dot.textContent = MARKS[st] || "?";
      p.dot.title = st;
      p.label.textContent = d.names[d.name[i]];
      p.type.textContent = d.types[d.type[i]];
      var extra = d.errors[i] || d.summary[i] || "";
      if (folded && hasKids) extra = "(" + (size[i] - 1) + " hidden) " + extra;
      p.sum.textContent = extra;
      p.sum.className = "sum" + (d.errors[i] ? " error-text" : "");
      var s = d.start[i], e = endOf(i);
      p.dur.textContent = s === null ? "–" : fmtDur(e - s) + (d.end[i] === null ? "…" : "");
      if (s === null) { p.bar.hidden = true; }
      else {
        p.bar.hidden = false;
        var left = ((s - win0) / w) * 100, width = ((e - s) / w) * 100;
        p.bar.style.left = Math.max(0, left) + "%";
        p.bar.style.width = Math.max(0.15, Math.min(width, 100 - Math.max(0, left))) + "%";
        p.bar.className = "bar status-bg-" + st + (d.end[i] === null ? " running" : "");
      }
    }
  }

  // -- filters: search and failed only ------------------------------------------------
  function applyFilter(matches) {
    var failedOnly = $("failed-only").checked;
    hits = [];
    if (!matches && !failedOnly) { keep = null; statusEl.textContent = d.n.toLocaleString("en-US") + " spans"; computeVisible(); return; }
    keep = new Uint8Array(d.n);
    for (var i = 0; i < d.n; i++) {
      if ((matches ? matches[i] : 1) && (!failedOnly || status(i) === "failed")) {
        hits.push(i);
        for (var a = i; a >= 0 && !keep[a]; a = d.parent[a]) keep[a] = 1; // with its ancestors
      }
    }
    hits.sort(function (a, b) { return d.pos[a] - d.pos[b]; });
    statusEl.textContent = hits.length.toLocaleString("en-US") + " matching span" + (hits.length === 1 ? "" : "s") + " of " + d.n.toLocaleString("en-US");
    computeVisible();
  }

  function runSearch() {
    var text = $("tree-search").value.trim().toLowerCase();
    var seq = ++searchSeq;
    if (!text) { applyFilter(null); return; }
    var matches = new Uint8Array(d.n);
    var hit = function (list, codes, i) { return list[codes[i]].toLowerCase().indexOf(text) >= 0; };
    for (var i = 0; i < d.n; i++) {
      if (hit(d.names, d.name, i) || hit(d.types, d.type, i) || hit(d.statuses, d.status, i) ||
          d.summary[i].toLowerCase().indexOf(text) >= 0 || d.id[i] === text ||
          (d.errors[i] && d.errors[i].toLowerCase().indexOf(text) >= 0)) matches[i] = 1;
    }
    var addServerHits = function (ids) {
      ids.forEach(function (id) { var j = idIndex.get(id); if (j !== undefined) matches[j] = 1; });
    };
    // Payload text is searched on the server, once per query; its hits are added when
    // they arrive (and again as later pages of the tree arrive).
    if (serverHits.text === text) { if (serverHits.ids) addServerHits(serverHits.ids); applyFilter(matches); return; }
    applyFilter(matches);
    serverHits = { text: text, ids: null };
    fetch(api + "/search?q=" + encodeURIComponent(text), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || serverHits.text !== text) return;
        serverHits.ids = body.ids;
        if (seq !== searchSeq) return;
        addServerHits(body.ids);
        applyFilter(matches);
      });
  }

  // -- selection, URL, keyboard ---------------------------------------------------------
  function reveal(i) {
    for (var a = d.parent[i]; a >= 0; a = d.parent[a]) collapsed.delete(a);
    if (keep && !keep[i]) { $("tree-search").value = ""; $("failed-only").checked = false; keep = null; }
    if (zoom >= 0 && (d.pos[i] < d.pos[zoom] || d.pos[i] >= d.pos[zoom] + size[zoom])) zoom = -1;
  }

  function scrollTo(i) {
    var at = vis.indexOf(i);
    if (at < 0) return;
    var top = at * ROW, h = viewport.clientHeight;
    if (top < viewport.scrollTop) viewport.scrollTop = top;
    else if (top + ROW > viewport.scrollTop + h) viewport.scrollTop = top + ROW - h;
  }

  function select(i, opts) {
    if (i < 0 || i >= d.n) return;
    if (vis.indexOf(i) < 0) { reveal(i); computeVisible(); }
    sel = i;
    scrollTo(i);
    render();
    var url = new URL(location.href);
    url.searchParams.set("span", d.id[i]);
    history.replaceState(null, "", url.pathname + url.search);
    if (!opts || !opts.noDetail) loadDetail(i);
  }

  function setZoom(i) {
    zoom = i;
    $("zoom-out").hidden = i < 0;
    computeVisible();
    if (sel >= 0) scrollTo(sel);
  }

  function toggle(i, open) {
    if (!kids[i]) return;
    if (open === undefined) open = collapsed.has(i);
    if (open) collapsed.delete(i); else collapsed.add(i);
    computeVisible();
  }

  viewport.addEventListener("scroll", function () { window.requestAnimationFrame(render); }, { passive: true });
  window.addEventListener("resize", render);
  rowsEl.addEventListener("click", function (ev) {
    var row = ev.target.closest(".row");
    if (!row) return;
    var i = Number(row.dataset.i);
    if (ev.target.classList.contains("tog")) toggle(i);
    else select(i);
  });
  rowsEl.addEventListener("dblclick", function (ev) {
    var row = ev.target.closest(".row");
    if (row) setZoom(Number(row.dataset.i));
  });
  viewport.addEventListener("keydown", function (ev) {
    if (!d || !vis.length) return;
    var at = sel >= 0 ? vis.indexOf(sel) : -1, page = Math.max(1, Math.floor(viewport.clientHeight / ROW) - 1);
    var go = function (k) { select(vis[Math.max(0, Math.min(vis.length - 1, k))]); };
    switch (ev.key) {
      case "ArrowDown": go(at + 1); break;
      case "ArrowUp": go(at < 0 ? 0 : at - 1); break;
      case "PageDown": go(at + page); break;
      case "PageUp": go(at - page); break;
      case "Home": go(0); break;
      case "End": go(vis.length - 1); break;
      case "ArrowRight":
        if (sel < 0) go(0);
        else if (kids[sel] && collapsed.has(sel) && !keep) toggle(sel, true);
        else if (kids[sel] && vis[at + 1] !== undefined && d.parent[vis[at + 1]] === sel) go(at + 1);
        break;
      case "ArrowLeft":
        if (sel < 0) break;
        if (kids[sel] && !collapsed.has(sel) && !keep) toggle(sel, false);
        else if (d.parent[sel] >= 0) select(d.parent[sel]);
        break;
      case "Enter": if (sel >= 0) setZoom(sel); break;
      case "Escape": setZoom(-1); break;
      default: return;
    }
    ev.preventDefault();
  });
  var searchTimer = 0;
  $("tree-search").addEventListener("input", function () { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 200); });
  $("tree-search").addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter" || !hits.length) return;
    ev.preventDefault(); // Enter: the next match after the selection, wrapping around
    var from = sel >= 0 ? d.pos[sel] : -1;
    for (var k = 0; k < hits.length; k++) if (d.pos[hits[k]] > from) { select(hits[k]); return; }
    select(hits[0]);
  });
  $("failed-only").addEventListener("change", runSearch);
  $("expand-all").addEventListener("click", function () { collapsed.clear(); computeVisible(); });
  $("collapse-all").addEventListener("click", function () {
    for (var i = 0; i < d.n; i++) if (kids[i] && d.parent[i] >= 0) collapsed.add(i);
    computeVisible();
  });
  $("zoom-out").addEventListener("click", function () { setZoom(-1); });

  // -- the selected span's detail -------------------------------------------------------
  function jsonView(value, level) {
    if (value === null || typeof value !== "object") {
      var cls = value === null ? "j-null" : "j-" + typeof value;
      var text = typeof value === "string" ? value : JSON.stringify(value);
      var leaf = el(typeof value === "string" && value.indexOf("\n") >= 0 ? "pre" : "span", cls, text);
      return leaf;
    }
    var isArr = Array.isArray(value), keys = isArr ? value : Object.keys(value);
    var box = el("details", "j-node");
    box.open = level < 2 && keys.length <= 50;
    box.appendChild(el("summary", "j-sum", (isArr ? "[" + value.length + "]" : "{" + keys.length + "}")));
    var list = el("div", "j-body"), limit = 200;
    var entries = isArr ? value.map(function (v, k) { return [k, v]; }) : Object.keys(value).map(function (k) { return [k, value[k]]; });
    var add = function (from) {
      entries.slice(from, from + limit).forEach(function (pair) {
        var line = el("div", "j-line");
        line.appendChild(el("span", "j-key", pair[0] + ": "));
        line.appendChild(jsonView(pair[1], level + 1));
        list.appendChild(line);
      });
      if (entries.length > from + limit) {
        var more = el("button", "link", "… " + (entries.length - from - limit) + " more");
        more.type = "button";
        more.addEventListener("click", function () { more.remove(); add(from + limit); });
        list.appendChild(more);
      }
    };
    box.addEventListener("toggle", function once() { if (box.open && !list.childNodes.length) add(0); });
    if (box.open) add(0);
    box.appendChild(list);
    return box;
  }

  function copyButton(label, text) {
    var b = el("button", "copy", "Copy");
    b.type = "button";
    b.setAttribute("aria-label", "Copy " + label);
    b.dataset.copy = text;
    return b;
  }

  function section(title, body, copyText) {
    var s = el("section", "d-sec");
    var h = el("h3", null, title);
    if (copyText !== undefined) h.appendChild(copyButton(title.toLowerCase(), copyText));
    s.append(h, body);
    return s;
  }

  function fact(dl, term, value, mono) {
    var div = el("div");
    div.append(el("dt", null, term), el("dd", mono ? "mono" : null, value));
    dl.appendChild(div);
    return div;
  }

  function timeText(iso) {
    if (!iso) return "–";
    return window.prefactorTime ? window.prefactorTime(iso) : iso;
  }

  function tracebackOf(result) {
    var err = result && result.error;
    if (!err || typeof err !== "object") return null;
    return err.traceback || err.stacktrace || err.stack || err["exception.stacktrace"] || null;
  }

  function showDetail(i, body) {
    var span = body.span, llm = body.llm, st = span.status;
    detail.textContent = "";
    var head = el("div", "d-head");
    head.append(el("span", "badge status-" + st, (MARKS[st] || "?") + " " + st), el("h2", null, d.names[d.name[i]]), el("span", "type", span.schema_name));
    var zoomBtn = el("button", null, "Zoom to subtree");
    zoomBtn.type = "button";
    zoomBtn.disabled = !kids[i];
    zoomBtn.addEventListener("click", function () { setZoom(i); });
    head.appendChild(zoomBtn);
    detail.appendChild(head);
    if (d.summary[i]) detail.appendChild(el("p", "d-summary", d.summary[i]));
    var result = span.result_payload;
    if (st === "failed") {
      var box = el("div", "alert error-box");
      box.append(el("strong", null, "Error "), el("span", "error-text", d.errors[i] || "failed"));
      var tb = tracebackOf(result);
      if (tb) box.appendChild(el("pre", "traceback", Array.isArray(tb) ? tb.join("\n") : tb));
      detail.appendChild(box);
    }
    var dl = el("dl", "facts small");
    var idDiv = fact(dl, "Span", span.id, true);
    idDiv.lastChild.appendChild(copyButton("span id", span.id));
    fact(dl, "Parent", span.parent_span_id || "–", true);
    fact(dl, "Started", timeText(span.started_at));
    fact(dl, "Finished", timeText(span.finished_at));
    var s = d.start[i], e = d.end[i];
    fact(dl, "Duration", s === null || e === null ? "–" : fmtDur(e - s));
    if (llm.models.length) fact(dl, "Model", llm.models.join(", "));
    if (llm.total_tokens) fact(dl, "Tokens", fmtNum(llm.input_tokens) + " in · " + fmtNum(llm.output_tokens) + " out · " + fmtNum(llm.total_tokens) + " total");
    if (llm.cost) fact(dl, "Cost", fmtCost(llm.cost));
    if (size[i] > 1) {
      fact(dl, "Subtree", (size[i] - 1).toLocaleString("en-US") + " descendants · " + fmtNum(subTok[i]) + " tokens · " + fmtCost(subCost[i]));
    }
    detail.appendChild(dl);
    if (body.messages.length) {
      var convo = el("div", "conversation");
      body.messages.forEach(function (m) {
        var msg = el("div", "msg role-" + (/^[a-z_]+$/.test(m.role) ? m.role : "other"));
        msg.append(el("div", "role", m.role), el("div", "content", m.content));
        convo.appendChild(msg);
      });
      detail.appendChild(section("Conversation", convo, JSON.stringify(body.messages, null, 2)));
    }
    var params = span.payload;
    if (params && typeof params === "object" && params.attributes && typeof params.attributes === "object") {
      detail.appendChild(section("Attributes", jsonView(params.attributes, 1), JSON.stringify(params.attributes, null, 2)));
    }
    detail.appendChild(section("Params", jsonView(params, 0), JSON.stringify(params, null, 2)));
    detail.appendChild(section("Result", jsonView(result, 0), JSON.stringify(result, null, 2)));
  }

  function loadDetail(i) {
    if (detailCtl) detailCtl.abort();
    detailCtl = new AbortController();
    detail.setAttribute("aria-busy", "true");
    fetch(api + "/spans/" + encodeURIComponent(d.id[i]), { credentials: "same-origin", signal: detailCtl.signal })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (body) { if (i === sel) showDetail(i, body); })
      .catch(function (err) {
        if (err.name === "AbortError") return;
        detail.textContent = "";
        detail.appendChild(el("p", "alert", "Could not load the span: " + err.message));
      })
      .finally(function () { detail.removeAttribute("aria-busy"); });
  }

  // -- totals, loading, live updates ----------------------------------------------------
  function showTotals() {
    var tok = 0, cost = 0, models = {};
    for (var i = 0; i < d.n; i++) { tok += d.tokens[i]; cost += d.cost[i]; if (d.model[i] >= 0) models[d.models[d.model[i]]] = 1; }
    $("run-tokens").textContent = fmtNum(tok);
    $("run-cost").textContent = fmtCost(cost);
    $("run-models").textContent = Object.keys(models).join(", ") || "–";
  }

  function code(list, value) {
    var at = list.indexOf(value);
    if (at < 0) { list.push(value); at = list.length - 1; }
    return at;
  }

  function merge(rows) {
    var grew = false;
    rows.forEach(function (r) {
      var i = idIndex.get(r.id);
      if (i === undefined) {
        i = d.n++; grew = true;
        d.id.push(r.id); idIndex.set(r.id, i);
        var p = r.parent_id === null ? undefined : idIndex.get(r.parent_id);
        d.parent.push(p === undefined ? -1 : p);
        ["name", "type", "status", "start", "end", "summary", "tokens", "cost", "model"].forEach(function (k) { d[k].push(null); });
      }
      d.name[i] = code(d.names, r.name); d.type[i] = code(d.types, r.type);
      d.status[i] = code(d.statuses, r.status);
      d.start[i] = r.start; d.end[i] = r.end; d.summary[i] = r.summary;
      d.tokens[i] = r.tokens; d.cost[i] = r.cost;
      d.model[i] = r.model === null ? -1 : code(d.models, r.model);
      if (r.error) d.errors[i] = r.error; else delete d.errors[i];
    });
    return grew;
  }

  function poll() {
    fetch(api + "/changes?since=" + encodeURIComponent(d.cursor), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (body) {
        if (body.more && body.cursor === d.cursor) { return load(); } // too many in one instant
        var keepSel = sel >= 0 ? d.id[sel] : null;
        merge(body.spans);
        d.cursor = body.cursor;
        layout();
        if (keep) runSearch(); else computeVisible();
        if (keepSel) sel = idIndex.get(keepSel);
        render();
        showTotals();
        var run = body.run, c = run.span_counts;
        $("run-spans").textContent = c.total + " (" + c.complete + " complete, " + c.failed + " failed, " + c.cancelled + " cancelled)";
        var badge = $("run-status").firstElementChild;
        if (badge) { badge.className = "badge status-" + run.status; badge.textContent = (MARKS[run.status] || "?") + " " + run.status; }
        var live = run.status === "pending" || run.status === "active" || c.pending + c.active > 0;
        $("live").hidden = !live;
        if (!keep) statusEl.textContent = d.n.toLocaleString("en-US") + " spans";
        if (live || body.more) setTimeout(poll, body.more ? 0 : POLL_MS);
      })
      .catch(function () { setTimeout(poll, POLL_MS * 2); });
  }

  // The tree comes in pages: a small first one draws the first screen, then the rest.
  var FIRST_PAGE = 2000, NEXT_PAGE = 25000, pending = [], wanted = null;

  function fetchPage(after, limit) {
    var url = api + "/tree?limit=" + limit + (after ? "&after=" + encodeURIComponent(after) : "");
    return fetch(url, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); });
  }

  function appendPage(p) {
    var base = d.n, k;
    // Each page has its own name/type/status/model tables: map its codes onto ours.
    var remap = function (table) { return p[table].map(function (v) { return code(d[table], v); }); };
    var nm = remap("names"), ty = remap("types"), st = remap("statuses"), md = remap("models");
    for (k = 0; k < p.n; k++) {
      d.id.push(p.id[k]); idIndex.set(p.id[k], base + k);
      d.parent.push(p.parent[k] >= 0 ? base + p.parent[k] : -1);
      d.name.push(nm[p.name[k]]); d.type.push(ty[p.type[k]]); d.status.push(st[p.status[k]]);
      d.start.push(p.start[k]); d.end.push(p.end[k]); d.summary.push(p.summary[k]);
      d.tokens.push(p.tokens[k]); d.cost.push(p.cost[k]);
      d.model.push(p.model[k] < 0 ? -1 : md[p.model[k]]);
    }
    Object.keys(p.errors).forEach(function (key) { d.errors[base + Number(key)] = p.errors[key]; });
    Object.keys(p.parent_ref).forEach(function (key) { pending.push([base + Number(key), p.parent_ref[key]]); });
    d.n += p.n;
    // A parent in a later page than its child is linked when it arrives.
    pending = pending.filter(function (e) {
      var at = idIndex.get(e[1]);
      if (at === undefined) return true;
      d.parent[e[0]] = at;
      return false;
    });
    if (p.cursor > d.cursor) d.cursor = p.cursor;
  }

  function openWanted() {
    if (!wanted) return;
    var at = idIndex.get(wanted);
    if (at !== undefined) { wanted = null; select(at); }
  }

  function more(next) {
    if (!next) {
      statusEl.textContent = d.n.toLocaleString("en-US") + " spans";
      if (keep) runSearch();
      showTotals();
      if (wanted) statusEl.textContent = "No span " + wanted + " in this run; " + d.n.toLocaleString("en-US") + " spans";
      view.dataset.complete = "1";
      if (view.dataset.live === "1") setTimeout(poll, POLL_MS);
      return null;
    }
    statusEl.textContent = "Loading… " + d.n.toLocaleString("en-US") + " loaded";
    return fetchPage(next, NEXT_PAGE).then(function (p) {
      appendPage(p);
      layout();
      if (keep) runSearch(); else computeVisible(); // a search so far sees the new spans too
      openWanted();
      return more(p.next);
    });
  }

  function load() {
    var started = performance.now();
    wanted = new URL(location.href).searchParams.get("span");
    return fetchPage(null, FIRST_PAGE)
      .then(function (p) {
        d = { t0: p.t0, n: 0, cursor: p.cursor, id: [], parent: [], name: [], names: [], type: [], types: [],
              status: [], statuses: [], start: [], end: [], summary: [], tokens: [], cost: [], model: [],
              models: [], errors: {} };
        idIndex = new Map(); pending = [];
        appendPage(p);
        layout();
        computeVisible();
        showTotals();
        openWanted();
        view.dataset.ready = String(Math.round(performance.now() - started));
        return more(p.next);
      })
      .catch(function (err) { statusEl.textContent = "Could not load the spans: " + err.message; });
  }

  load();
})();
