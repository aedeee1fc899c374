/* leakguard flame graph: draws the call tree embedded in the page as an
 * icicle on a canvas (the outermost frames on top), with zoom on click,
 * search, tooltips and, for diffs and leak reports, growth colours.
 *
 * The tree comes from the JSON script element with id "lg-data" (see
 * leakguard/_export/flamegraph.py for its layout). Every text
 * taken from it is inserted with textContent or drawn on the canvas: data
 * never becomes markup.
 *
 * window.flamegraph is a small read-only view of the state, for tests and
 * the curious: nodeCount, drawnCount(), zoomed(), info(i), find(name),
 * match(), mode(), lastRenderMs, lastClickMs, formatSize(n, sign).
 */
(function () {
  "use strict";

  var ROW = 18; // CSS pixels per frame row
  var MIN_WIDTH = 0.4; // boxes narrower than this (CSS px) are not drawn
  var LABEL_MIN = 26; // boxes narrower than this get no label

  var $ = function (id) {
    return document.getElementById(id);
  };
  var data = JSON.parse($("lg-data").textContent);
  var nodes = data.nodes;
  var P = nodes.parent;
  var LOC = nodes.location;
  var SIZE = nodes.size;
  var COUNT = nodes.count;
  var N = P.length;
  var isDiff = data.kind !== "snapshot";
  var zeros = new Array(N).fill(0);
  var DSIZE = nodes.size_diff || zeros;
  var DCOUNT = nodes.count_diff || zeros;
  var GROWN = nodes.grown || zeros;
  var FOLDED = new Map(nodes.folded || []);
  var FILES = data.files;
  var LOCS = data.locations; // [file index, line, function, source line]

  var kids = [];
  var depth = new Int32Array(N);
  for (var i = 0; i < N; i++) kids.push([]);
  for (i = 1; i < N; i++) {
    kids[P[i]].push(i);
    depth[i] = depth[P[i]] + 1; // parents come before their children
  }

  // -- text ------------------------------------------------------------------

  var UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

  // Python's "%.Nf": the nearest decimal, ties to even.
  function fixed(x, digits) {
    var m = Math.pow(10, digits);
    var y = x * m;
    var f = Math.floor(y);
    var rest = y - f;
    var r = rest > 0.5 ? f + 1 : rest < 0.5 ? f : f % 2 === 0 ? f : f + 1;
    var s = (r / m).toFixed(digits);
    if (x < 0 && s.charAt(0) !== "-") s = "-" + s;
    return s;
  }

  // The same text as leakguard._model._format_size (tracemalloc's units).
  function formatSize(size, sign) {
    for (var k = 0; k < UNITS.length; k++) {
      var unit = UNITS[k];
      var digits = -1;
      if (unit !== "B" && Math.abs(size) < 100) digits = 1;
      else if (unit === "TiB" || Math.abs(size) < 10 * 1024) digits = 0;
      if (digits >= 0) {
        var s = fixed(size, digits);
        return (sign && s.charAt(0) !== "-" ? "+" : "") + s + " " + unit;
      }
      size /= 1024;
    }
    return String(size);
  }

  function formatCount(n, sign) {
    var s = Math.abs(n).toLocaleString("en-US");
    return (n < 0 ? "-" : sign ? "+" : "") + s;
  }

  function share(part, whole) {
    if (!whole) return "0%";
    var pct = (100 * part) / whole;
    if (part > 0 && pct < 0.05) return "<0.1%";
    return pct.toFixed(1) + "%";
  }

  function basename(path) {
    var cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
    return cut >= 0 && cut < path.length - 1 ? path.slice(cut + 1) : path;
  }

  var ROOT_LABEL = { snapshot: "all memory", diff: "all changes", leaks: "all leaking sites" };

  function frameOf(i) {
    var at = LOC[i];
    if (at < 0) return null;
    var loc = LOCS[at];
    return { file: FILES[loc[0]], line: loc[1], func: loc[2], source: loc[3] };
  }

  function labelOf(i) {
    if (i === 0) return ROOT_LABEL[data.kind] || "all";
    if (FOLDED.has(i)) return "(" + FOLDED.get(i).toLocaleString("en-US") + " smaller)";
    var f = frameOf(i);
    var where = basename(f.file) + ":" + f.line;
    return f.func ? f.func + "  " + where : where;
  }

  var searchText = [];
  for (i = 0; i < N; i++) {
    var f = frameOf(i);
    searchText.push(f ? (f.func + " " + f.file + ":" + f.line).toLowerCase() : "");
  }

  // -- colours ---------------------------------------------------------------

  function hash(s) {
    var h = 2166136261;
    for (var k = 0; k < s.length; k++) {
      h ^= s.charCodeAt(k);
      h = Math.imul(h, 16777619);
    }
    return h >>> 0;
  }

  var NEUTRAL = [221, 221, 221];
  var GREW = [218, 38, 38];
  var SHRANK = [38, 108, 218];
  var MATCH = "rgb(196, 56, 232)";

  function mix(to, t) {
    return (
      "rgb(" +
      Math.round(NEUTRAL[0] + (to[0] - NEUTRAL[0]) * t) +
      ", " +
      Math.round(NEUTRAL[1] + (to[1] - NEUTRAL[1]) * t) +
      ", " +
      Math.round(NEUTRAL[2] + (to[2] - NEUTRAL[2]) * t) +
      ")"
    );
  }

  var maxChange = 0;
  for (i = 1; i < N; i++) maxChange = Math.max(maxChange, Math.abs(DSIZE[i]));

  var colour = [];
  for (i = 0; i < N; i++) {
    var frame = frameOf(i);
    if (isDiff) {
      var d = i === 0 ? 0 : DSIZE[i];
      // Any change shows; the strongest change is the deepest colour.
      var t = d === 0 ? 0 : 0.35 + 0.65 * Math.sqrt(Math.abs(d) / maxChange);
      colour.push(d > 0 ? mix(GREW, t) : d < 0 ? mix(SHRANK, t) : mix(NEUTRAL, 0));
    } else if (frame) {
      // Warm hues: near each other within a file, lightness per line.
      var own = hash(frame.func + ":" + frame.line);
      var hue = 18 + (hash(frame.file) % 28) + (own % 9);
      var light = 60 + ((own >>> 8) % 14);
      colour.push("hsl(" + hue + ", 86%, " + light + "%)");
    } else {
      colour.push(i === 0 ? "rgb(206, 202, 196)" : "rgb(190, 190, 190)");
    }
  }

  // -- state -----------------------------------------------------------------

  var mode = isDiff && GROWN[0] > 0 ? "grown" : "size";
  var zoom = 0;
  var query = "";
  var matched = null; // Uint8Array when searching
  var matchInfo = { query: "", frames: 0, value: 0, share: 0 };
  var ordered = {}; // mode -> children lists, largest first, folded last
  var lastRenderMs = 0;
  var lastClickMs = 0;

  function values() {
    return mode === "grown" ? GROWN : SIZE;
  }

  function childrenOf(i) {
    var lists = ordered[mode];
    if (!lists) {
      var V = values();
      lists = ordered[mode] = kids.map(function (list) {
        return list.slice().sort(function (a, b) {
          var fa = FOLDED.has(a) ? 1 : 0;
          var fb = FOLDED.has(b) ? 1 : 0;
          return fa - fb || V[b] - V[a] || a - b;
        });
      });
    }
    return lists[i];
  }

  // -- elements --------------------------------------------------------------

  var canvas = $("lg-canvas");
  var graph = $("lg-graph");
  var ctx = canvas.getContext("2d");
  var tip = $("lg-tip");
  var search = $("lg-search");
  var matchLabel = $("lg-match");
  var crumbs = $("lg-crumbs");
  var reset = $("lg-reset");

  // Drawn boxes, in drawing order: node, x, width (CSS px), row.
  var drawn = { node: [], x: [], w: [], row: [], rows: [] };

  function text(tag, content, cls) {
    var e = document.createElement(tag);
    e.textContent = content;
    if (cls) e.className = cls;
    return e;
  }

  // -- drawing ---------------------------------------------------------------

  function fit(label, room) {
    if (ctx.measureText(label).width <= room) return label;
    var n = Math.min(label.length - 1, Math.floor(room / charWidth));
    while (n > 0 && ctx.measureText(label.slice(0, n) + "\u2026").width > room) n--;
    return n > 0 ? label.slice(0, n) + "\u2026" : "";
  }

  var charWidth = 7;

  function layout(width) {
    var V = values();
    drawn = { node: [], x: [], w: [], row: [], rows: [] };
    var path = [];
    for (var at = zoom; at >= 0; at = at === 0 ? -1 : P[at]) path.unshift(at);
    function put(node, x, w, row) {
      drawn.node.push(node);
      drawn.x.push(x);
      drawn.w.push(w);
      drawn.row.push(row);
      (drawn.rows[row] || (drawn.rows[row] = [])).push(drawn.node.length - 1);
    }
    for (var r = 0; r < path.length - 1; r++) put(path[r], 0, width, r);
    if (!(V[zoom] > 0)) return path.length - 1;
    var scale = width / V[zoom];
    var stack = [[zoom, 0, path.length - 1]];
    var deepest = path.length - 1;
    while (stack.length) {
      var top = stack.pop();
      var node = top[0];
      var x = top[1];
      var row = top[2];
      put(node, x, V[node] * scale, row);
      if (row > deepest) deepest = row;
      var children = childrenOf(node);
      var cx = x;
      var next = [];
      for (var k = 0; k < children.length; k++) {
        var c = children[k];
        var cw = V[c] * scale;
        if (cw >= MIN_WIDTH) next.push([c, cx, row + 1]);
        cx += cw;
      }
      for (k = next.length - 1; k >= 0; k--) stack.push(next[k]);
    }
    return deepest;
  }

  function render() {
    var started = performance.now();
    drawnWidth = graph.clientWidth;
    var width = Math.max(drawnWidth, 100);
    var deepest = layout(width);
    var height = (deepest + 1) * ROW;
    var ratio = window.devicePixelRatio || 1;
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
    ctx.textBaseline = "middle";
    charWidth = ctx.measureText("abcdefghijklmnopqrstuvwxyz").width / 26 || 7;
    var zoomRow = depth[zoom];
    for (var k = 0; k < drawn.node.length; k++) {
      var node = drawn.node[k];
      var x = drawn.x[k];
      var w = drawn.w[k];
      var y = drawn.row[k] * ROW;
      var alpha = drawn.row[k] < zoomRow ? 0.6 : 1;
      var fill = colour[node];
      if (matched) {
        if (matched[node]) fill = MATCH;
        else alpha *= 0.3;
      }
      ctx.globalAlpha = alpha;
      ctx.fillStyle = fill;
      ctx.fillRect(x, y, w > 3 ? w - 1 : w, ROW - 1);
      if (w >= LABEL_MIN) {
        var label = fit(labelOf(node), w - 6);
        if (label) {
          ctx.fillStyle = matched && matched[node] ? "#ffffff" : "#141414";
          ctx.fillText(label, x + 3, y + ROW / 2);
        }
      }
    }
    ctx.globalAlpha = 1;
    drawCrumbs();
    reset.disabled = zoom === 0;
    lastRenderMs = performance.now() - started;
  }

  var pending = false;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      render();
    });
  }

  function drawCrumbs() {
    crumbs.replaceChildren();
    var path = [];
    for (var at = zoom; at >= 0; at = at === 0 ? -1 : P[at]) path.unshift(at);
    path.forEach(function (node, k) {
      if (k > 0) crumbs.appendChild(text("span", "\u203a"));
      var b = text("button", labelOf(node));
      b.type = "button";
      b.title = labelOf(node);
      if (node === zoom) b.setAttribute("aria-current", "true");
      b.addEventListener("click", function () {
        zoomTo(node);
      });
      crumbs.appendChild(b);
    });
  }

  // -- interaction -----------------------------------------------------------

  function hit(clientX, clientY) {
    var box = canvas.getBoundingClientRect();
    var x = clientX - box.left;
    var row = Math.floor((clientY - box.top) / ROW);
    var list = drawn.rows[row];
    if (!list || x < 0) return -1;
    var lo = 0;
    var hi = list.length - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      var k = list[mid];
      if (x < drawn.x[k]) hi = mid - 1;
      else if (x >= drawn.x[k] + Math.max(drawn.w[k], 1)) lo = mid + 1;
      else return drawn.node[k];
    }
    return -1;
  }

  function zoomTo(node) {
    zoom = node;
    hideTip();
    render();
  }

  function line(content, cls) {
    tip.appendChild(text("div", content, cls));
  }

  function showTip(node, clientX, clientY) {
    var V = values();
    var f = frameOf(node);
    tip.replaceChildren();
    line(f && f.func ? f.func : labelOf(node), "lg-tip-name");
    if (f) {
      line(f.file + ":" + f.line, "lg-tip-where");
      if (f.source) line(f.source, "lg-tip-source");
    } else if (FOLDED.has(node)) {
      line(
        FOLDED.get(node).toLocaleString("en-US") +
          " frames below the drawing limit, folded together",
        "lg-tip-where"
      );
    }
    var bytes = formatSize(SIZE[node], false) + " (" + formatCount(SIZE[node]) + " B)";
    var blocks = formatCount(COUNT[node]) + (COUNT[node] === 1 ? " block" : " blocks");
    line((isDiff ? "live: " : "") + bytes + " in " + blocks);
    if (isDiff) {
      var d = DSIZE[node];
      line(
        "change: " +
          formatSize(d, true) +
          " (" +
          formatCount(d, true) +
          " B), " +
          formatCount(DCOUNT[node], true) +
          " blocks",
        d > 0 ? "lg-tip-grew" : d < 0 ? "lg-tip-shrank" : ""
      );
      if (mode === "grown") line("grown: " + formatSize(GROWN[node], false));
    }
    var shares = share(V[node], V[0]) + " of " + (mode === "grown" ? "all growth" : "total");
    if (node !== 0) shares += ", " + share(V[node], V[P[node]]) + " of parent";
    line(shares);
    var own = V[node];
    kids[node].forEach(function (c) {
      own -= V[c];
    });
    if (kids[node].length && own > 0 && f) {
      line("in this frame itself: " + formatSize(own, false));
    }
    tip.hidden = false;
    var room = tip.getBoundingClientRect();
    var left = clientX + 14;
    var top = clientY + 16;
    if (left + room.width > window.innerWidth - 4) left = Math.max(4, clientX - room.width - 8);
    if (top + room.height > window.innerHeight - 4) top = Math.max(4, clientY - room.height - 8);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }

  function hideTip() {
    tip.hidden = true;
  }

  canvas.addEventListener("mousemove", function (event) {
    var node = hit(event.clientX, event.clientY);
    if (node < 0) hideTip();
    else showTip(node, event.clientX, event.clientY);
  });
  canvas.addEventListener("mouseleave", hideTip);
  canvas.addEventListener("click", function (event) {
    var started = performance.now();
    var node = hit(event.clientX, event.clientY);
    if (node >= 0 && node !== zoom) zoomTo(node);
    lastClickMs = performance.now() - started;
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      zoomTo(0);
    }
  });
  reset.addEventListener("click", function () {
    zoomTo(0);
  });
  // The width can arrive after the script runs (a frame laid out late) and
  // change at any time: draw again whenever it does.
  var drawnWidth = -1;
  function onResize() {
    if (graph.clientWidth !== drawnWidth) scheduleRender();
  }
  if (window.ResizeObserver) new ResizeObserver(onResize).observe(graph);
  window.addEventListener("resize", onResize);

  function runSearch() {
    query = search.value.trim().toLowerCase();
    var V = values();
    if (!query) {
      matched = null;
      matchInfo = { query: "", frames: 0, value: 0, share: 0 };
      matchLabel.textContent = "";
      render();
      return;
    }
    matched = new Uint8Array(N);
    var covered = new Uint8Array(N);
    var frames = 0;
    var value = 0;
    for (var k = 1; k < N; k++) {
      if (searchText[k] && searchText[k].indexOf(query) >= 0) {
        matched[k] = 1;
        frames++;
        if (!covered[P[k]]) value += V[k];
      }
      covered[k] = matched[k] || covered[P[k]];
    }
    matchInfo = { query: query, frames: frames, value: value, share: V[0] ? value / V[0] : 0 };
    matchLabel.textContent = frames
      ? frames.toLocaleString("en-US") +
        (frames === 1 ? " frame matches: " : " frames match: ") +
        formatSize(value, false) +
        ", " +
        share(value, V[0]) +
        (mode === "grown" ? " of all growth" : " of the total")
      : "no frame matches";
    render();
  }
  search.addEventListener("input", runSearch);

  // -- header ----------------------------------------------------------------

  var totals = data.totals;
  var KIND = { snapshot: "snapshot", diff: "diff", leaks: "leak report" };
  document.title = data.title ? data.title + " \u2014 leakguard flame graph" : "leakguard flame graph";
  $("lg-title").textContent = data.title || "leakguard flame graph";
  $("lg-kind").textContent = KIND[data.kind] || data.kind;
  var summary =
    formatSize(totals.size, false) +
    " in " +
    formatCount(totals.count) +
    (totals.count === 1 ? " block, " : " blocks, ") +
    formatCount(totals.samples) +
    (totals.samples === 1 ? " call stack" : " call stacks");
  if (isDiff) {
    summary =
      "live " +
      summary +
      "; change " +
      formatSize(totals.size_diff, true) +
      ", " +
      formatCount(totals.count_diff, true) +
      " blocks";
  }
  $("lg-totals").textContent = summary;

  var legend = $("lg-legend");
  function swatch(rgb, label) {
    var s = text("span", "");
    s.className = "lg-swatch";
    s.style.background = rgb;
    var item = text("span", "");
    item.appendChild(s);
    item.appendChild(document.createTextNode(label));
    legend.appendChild(item);
  }
  if (isDiff) {
    swatch(mix(GREW, 1), "grew");
    swatch(mix(SHRANK, 1), "shrank");
    swatch(mix(NEUTRAL, 0), "unchanged");
    legend.appendChild(text("span", "deeper colour: larger change"));
  }
  legend.appendChild(
    text("span", "Click a frame to zoom in, Esc or \u201cReset zoom\u201d to zoom out.")
  );

  var modes = $("lg-modes");
  function showModes() {
    modes.querySelectorAll("button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-mode") === mode));
    });
  }
  if (isDiff) {
    modes.hidden = false;
    modes.querySelectorAll("button").forEach(function (b) {
      b.addEventListener("click", function () {
        mode = b.getAttribute("data-mode");
        if (!(values()[zoom] > 0)) zoom = 0; // nothing of the zoomed frame to draw
        showModes();
        if (query) runSearch();
        else render();
      });
    });
    showModes();
  }

  if (totals.folded > 0) {
    var limits = data.limits;
    var why = "beyond " + formatCount(limits.max_nodes) + " boxes";
    if (limits.min_share > 0) {
      why = "under " + Number((limits.min_share * 100).toPrecision(6)) + "% of the total, or " + why;
    }
    $("lg-note").textContent =
      "Showing " +
      formatCount(N - 1 - FOLDED.size) +
      " of " +
      formatCount(totals.frames) +
      " frames; the others (" +
      why +
      ") are folded into \u201c(n smaller)\u201d boxes.";
  }

  var empty = !(SIZE[0] > 0) && !(GROWN[0] > 0);
  if (empty) {
    var NOTHING = {
      snapshot: "Nothing to show: this snapshot holds no traced memory.",
      diff: "Nothing to show: no memory is live in the newer snapshot and nothing grew.",
      leaks: "Nothing to show: no leaking site was found.",
    };
    $("lg-empty").textContent = NOTHING[data.kind] || "Nothing to show.";
    $("lg-empty").hidden = false;
    graph.hidden = true;
    $("lg-bar").hidden = true;
    legend.hidden = true;
  } else {
    render();
  }

  function info(node) {
    if (!(node >= 0 && node < N)) return null;
    var f = frameOf(node);
    return {
      node: node,
      label: labelOf(node),
      function: f ? f.func : null,
      file: f ? f.file : null,
      line: f ? f.line : null,
      size: SIZE[node],
      count: COUNT[node],
      size_diff: DSIZE[node],
      count_diff: DCOUNT[node],
      grown: GROWN[node],
      depth: depth[node],
      folded: FOLDED.get(node) || 0,
      colour: colour[node],
    };
  }

  var api = {
    nodeCount: N,
    drawnCount: function () {
      return drawn.node.length;
    },
    zoomed: function () {
      return info(zoom);
    },
    info: info,
    // The drawn boxes of frames whose function, file or label is `name`, in
    // viewport CSS pixels.
    find: function (name) {
      var box = canvas.getBoundingClientRect();
      var found = [];
      for (var k = 0; k < drawn.node.length; k++) {
        var node = drawn.node[k];
        var f = frameOf(node);
        if ((f && (f.func === name || f.file === name)) || labelOf(node) === name) {
          found.push({
            node: node,
            label: labelOf(node),
            x: box.left + drawn.x[k],
            y: box.top + drawn.row[k] * ROW,
            width: drawn.w[k],
            height: ROW - 1,
          });
        }
      }
      return found;
    },
    match: function () {
      return Object.assign({}, matchInfo);
    },
    mode: function () {
      return mode;
    },
    formatSize: formatSize,
  };
  Object.defineProperty(api, "lastRenderMs", {
    get: function () {
      return lastRenderMs;
    },
  });
  Object.defineProperty(api, "lastClickMs", {
    get: function () {
      return lastClickMs;
    },
  });
  Object.defineProperty(window, "flamegraph", { value: Object.freeze(api) });
})();
