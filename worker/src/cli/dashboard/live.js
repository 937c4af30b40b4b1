// Fetches the page's view every second and swaps it in when its version changed, so that the
// page follows the job without a reload. Shows whether the dashboard is reachable.
(function () {
  "use strict";
  var view = document.getElementById("view");
  var link = document.getElementById("link");
  function show(text, cls) {
    link.textContent = text;
    link.className = cls;
  }
  function tick() {
    fetch(view.dataset.src, { cache: "no-store" })
      .then(function (r) {
        return r.text().then(function (body) {
          if (!r.ok) throw new Error(body || r.status);
          var version = r.headers.get("x-kask-version");
          if (version !== view.dataset.version) {
            view.innerHTML = body;
            view.dataset.version = version;
            view.dataset.updates = String(Number(view.dataset.updates) + 1);
          }
          show("live, updated " + new Date().toLocaleTimeString(), "live");
        });
      })
      .catch(function (e) {
        show("not connected (" + e.message + "): the run has ended or kask stopped", "down");
      })
      .then(function () {
        setTimeout(tick, 1000);
      });
  }
  tick();
})();
