// Catalogue search as you type on the prescribe form: fetches the matching packages as the
// form's own radio buttons (the page works the same without this: the Search button).
(function () {
  "use strict";
  var input = document.getElementById("q");
  if (!input || !window.fetch) { return; }
  var timer = null;
  var asked = 0;
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      var current = document.getElementById("package-options");
      var chosen = current && current.querySelector("input[name=varenr]:checked");
      var params = new URLSearchParams({ q: input.value.trim(), varenr: chosen ? chosen.value : "" });
      var mine = ++asked;
      fetch(input.dataset.optionsUrl + "?" + params.toString(), { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) {
          if (html === null || mine !== asked) { return; }
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#package-options");
          var old = document.getElementById("package-options");
          if (fresh && old) { old.replaceWith(fresh); }
        })
        .catch(function () { /* the Search button still works */ });
    }, 250);
  });
}());
