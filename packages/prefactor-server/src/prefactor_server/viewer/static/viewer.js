// Refresh the page while a run is active (the server sets data-refresh), keeping the
// scroll position and which span cards are open. No other script, no external assets.
(function () {
  "use strict";
  var key = "prefactor-viewer:" + location.pathname + location.search;
  try {
    var saved = JSON.parse(sessionStorage.getItem(key) || "null");
    sessionStorage.removeItem(key);
    if (saved) {
      (saved.open || []).forEach(function (id) {
        var card = document.getElementById(id);
        if (card) card.open = true;
      });
      window.scrollTo(0, saved.y || 0);
    }
  } catch (e) { /* storage unavailable: refresh without restoring */ }
  var seconds = Number(document.body.dataset.refresh || 0);
  if (!seconds) return;
  setTimeout(function () {
    var open = Array.prototype.map.call(document.querySelectorAll("details[open]"), function (d) { return d.id; });
    try { sessionStorage.setItem(key, JSON.stringify({ y: window.scrollY, open: open })); } catch (e) { /* ignore */ }
    location.reload();
  }, seconds * 1000);
})();
