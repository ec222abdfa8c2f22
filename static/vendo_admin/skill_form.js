/* The skill form shows the price fields of the chosen pricing mode only. Without scripts
   every field shows, and the server ignores none of them. */
(function () {
  "use strict";

  var MODES = {
    fixed: ["price"],
    per_1k_tokens: ["price_per_1k", "min_price"]
  };
  var ALL = ["price", "price_per_1k", "min_price"];

  function row(name) {
    var input = document.getElementById("id_" + name);
    return input ? input.closest(".form-row") : null;
  }

  function sync(select) {
    var shown = MODES[select.value] || ALL;
    ALL.forEach(function (name) {
      var found = row(name);
      if (found) {
        found.hidden = shown.indexOf(name) === -1;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("id_pricing");
    if (!select) {
      return;
    }
    select.addEventListener("change", function () { sync(select); });
    sync(select);
  });
})();
