// The menu bar's drop-downs (<details class="menu-group">): one open at a time, closed by a
// click elsewhere or Escape. Without this script they still open and close on their own.
(function () {
  "use strict";
  var groups = document.querySelectorAll("nav.menu details.menu-group");
  function closeAll(except) {
    groups.forEach(function (g) { if (g !== except) { g.open = false; } });
  }
  groups.forEach(function (g) {
    g.addEventListener("toggle", function () { if (g.open) { closeAll(g); } });
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest("details.menu-group")) { closeAll(null); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeAll(null); }
  });
})();
