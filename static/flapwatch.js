// flapwatch: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Tapping the chosen segment again clears it: a mistaken tap can be undone without
  // a "none" button, so a field the nurse did not assess stays unrecorded.
  document.addEventListener("click", function (event) {
    var input = event.target.closest && event.target.closest(".segment input[type=radio]");
    if (!input) { return; }
    if (input.dataset.wasChecked === "true") {
      input.checked = false;
      input.dataset.wasChecked = "false";
      input.dispatchEvent(new Event("change", { bubbles: true }));
    } else {
      var group = document.querySelectorAll('input[type=radio][name="' + input.name + '"]');
      group.forEach(function (other) { other.dataset.wasChecked = "false"; });
      input.dataset.wasChecked = "true";
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".segment input[type=radio]").forEach(function (input) {
      input.dataset.wasChecked = input.checked ? "true" : "false";
    });

    // The ward board reloads itself while it is on screen, so due/overdue stay current.
    var board = document.querySelector("[data-refresh-seconds]");
    if (board) {
      var seconds = parseInt(board.getAttribute("data-refresh-seconds"), 10) || 60;
      setInterval(function () {
        if (document.visibilityState === "visible") { window.location.reload(); }
      }, seconds * 1000);
    }
  });
})();
