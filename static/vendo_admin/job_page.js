/* A job's admin page reloads itself every few seconds while the job runs (a test run, or a
   buyer's job), so its provider sees it end without reloading by hand. Once the job has
   ended the server no longer asks for it, and the page stays still. */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var marker = document.getElementById("job-page");
    var seconds = marker ? Number(marker.getAttribute("data-refresh-seconds")) : 0;
    if (seconds > 0) {
      window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }
  });
})();
