// The ward round's small enhancements (our own; every form works without this file):
// - the ward overview reloads its table every minute without a full page load;
// - a keyboard-wedge scanner's Enter in the pack field checks the pack in place.
(function () {
  "use strict";
  var overview = document.getElementById("overview");
  if (overview && overview.dataset.src && window.fetch) {
    var stamp = document.getElementById("refreshed");
    var refresh = function () {
      fetch(overview.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
        .then(function (html) {
          overview.innerHTML = html;
          if (stamp) {
            var now = new Date();
            stamp.textContent = stamp.textContent.replace(/\d\d:\d\d/, ("0" + now.getHours()).slice(-2) + ":" + ("0" + now.getMinutes()).slice(-2));
          }
        })
        .catch(function () { /* keep what is shown; the Refresh link still works */ });
    };
    window.setInterval(refresh, 60000);
  }
  var pack = document.getElementById("pack");
  var form = document.getElementById("chart-form");
  if (pack && form && pack.dataset.check && window.fetch) {
    pack.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") { return; }
      event.preventDefault();
      var body = new FormData(form);
      fetch(pack.dataset.check, { method: "POST", body: new URLSearchParams(body), credentials: "same-origin" })
        .then(function (answer) { return answer.text(); })
        .then(function (html) {
          var holder = document.getElementById("pack-result");
          if (holder) { holder.outerHTML = html; }
        });
    });
  }
})();
