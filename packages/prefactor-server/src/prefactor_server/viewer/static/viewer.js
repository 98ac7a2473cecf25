// Shared by every page: local and relative times, copy buttons, filters that apply on
// change, and the run list's live refresh (the table is fetched and swapped, never a
// page reload). No inline scripts anywhere, so a strict CSP (script-src 'self') holds.
(function () {
  "use strict";
  var units = [["year", 31536e6], ["month", 2592e6], ["day", 864e5], ["hour", 36e5], ["minute", 6e4], ["second", 1e3]];
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", { numeric: "auto" }) : null;
  function relative(ms) {
    var diff = ms - Date.now();
    for (var k = 0; k < units.length; k++) {
      if (Math.abs(diff) >= units[k][1] || k === units.length - 1) {
        var n = Math.round(diff / units[k][1]);
        return rtf ? rtf.format(n, units[k][0]) : Math.abs(n) + " " + units[k][0] + "s " + (n < 0 ? "ago" : "from now");
      }
    }
    return "";
  }
  function local(ms) {
    var t = new Date(ms), p = function (n) { return String(n).padStart(2, "0"); };
    return t.getFullYear() + "-" + p(t.getMonth() + 1) + "-" + p(t.getDate()) + " " + p(t.getHours()) + ":" + p(t.getMinutes()) + ":" + p(t.getSeconds());
  }
  // "2026-12-01 21:08:30 (5 minutes ago)" in the browser's time zone.
  window.prefactorTime = function (iso) {
    var ms = Date.parse(iso);
    return isNaN(ms) ? iso : local(ms) + " (" + relative(ms) + ")";
  };
  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var ms = Date.parse(t.getAttribute("datetime"));
      if (isNaN(ms)) return;
      t.textContent = local(ms);
      t.title = relative(ms) + " · " + t.getAttribute("datetime");
    });
  }
  function copy(text, button) {
    var done = function () { var old = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = old; }, 1200); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, function () {}); return; }
    var area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); done(); } finally { area.remove(); }
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (b) { ev.preventDefault(); copy(b.dataset.copy, b); }
  });
  document.addEventListener("change", function (ev) {
    if (ev.target.matches && ev.target.matches("[data-autosubmit]")) ev.target.form.submit();
  });
  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    var table = document.getElementById("runs");
    if (!table || table.dataset.live !== "1") return;
    var refresh = function () {
      fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("runs");
        if (!fresh) return;
        localiseTimes(fresh);
        table.replaceWith(fresh);
        table = fresh;
        if (fresh.dataset.live === "1") setTimeout(refresh, 2000);
      }).catch(function () { setTimeout(refresh, 5000); });
    };
    setTimeout(refresh, 2000);
  });
})();
