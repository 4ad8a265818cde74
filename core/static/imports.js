// Progress of an import (core/templates/imports/show.html): poll the task's status every
// half second, move the bar, and reload the page for the result when the task has ended.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var bar = document.getElementById("import-bar");
  var done = document.getElementById("import-done");
  var total = document.getElementById("import-total");
  var status = document.getElementById("import-status");
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (state) {
        if (!state) { setTimeout(poll, 2000); return; }
        if (state.finished) { window.location.reload(); return; }
        if (state.percent !== null) { bar.value = state.percent; bar.textContent = state.percent + "%"; }
        done.textContent = state.done;
        total.textContent = state.total === null ? "?" : state.total;
        status.textContent = status.getAttribute("data-" + state.status) || state.status;
        setTimeout(poll, 500);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 300);
})();
