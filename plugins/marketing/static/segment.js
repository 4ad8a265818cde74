// The segment builder's live count: ask /marketing/segments/count whenever a filter changes.
(function () {
  var form = document.querySelector("form.segment-filters");
  var out = document.getElementById("segment-count");
  if (!form || !out) return;
  var timer = null;
  function refresh() {
    var params = new URLSearchParams(new FormData(form));
    fetch(form.dataset.countUrl + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        out.dataset.count = data.count;
        out.querySelector(".n").textContent = Object.keys(data.errors).length ? "–" : data.count;
      });
  }
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
  form.addEventListener("change", refresh);
})();
