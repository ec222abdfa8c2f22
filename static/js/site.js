/*
 * Vendo, every page: dismiss buttons on the messages. Loaded as a file, not inline, so the
 * Content-Security-Policy needs no 'unsafe-inline'.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (button) {
      button.closest(".alert").remove();
    }
  });
})();
