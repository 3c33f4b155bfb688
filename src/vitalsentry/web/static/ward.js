// Ward overview: polls the server-rendered rows (revalidated by ETag: 304 while nothing changed)
// and swaps them in when they change (no reload).
(function () {
  "use strict";
  var body = document.getElementById("ward-rows");
  var stamp = document.getElementById("updated");
  var last = body.innerHTML.trim();
  var PERIOD_MS = 1000;
  window.vitalsentryWard = { changes: 0, lastChange: null };
  function tick() {
    fetch(body.dataset.src, { credentials: "same-origin", cache: "no-cache" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        var now = new Date();
        stamp.textContent = now.toLocaleTimeString();
        stamp.setAttribute("datetime", now.toISOString());
        if (html.trim() !== last) {
          last = html.trim();
          // Keep keyboard focus on the same patient's link across the swap.
          var row = body.contains(document.activeElement) ? document.activeElement.closest("tr") : null;
          body.innerHTML = html;
          var again = row ? body.querySelector('tr[data-patient="' + CSS.escape(row.dataset.patient) + '"] a') : null;
          if (again) { again.focus(); }
          window.vitalsentryWard.changes += 1;
          window.vitalsentryWard.lastChange = Date.now();
        }
      })
      .catch(function () { stamp.textContent = "connection lost, retrying"; })
      .finally(function () { setTimeout(tick, PERIOD_MS); });
  }
  setTimeout(tick, PERIOD_MS);
})();
