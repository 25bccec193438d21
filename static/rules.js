// flapwatch rule editor: show each condition only the inputs its test uses.
// Progressive enhancement: without this file every input is shown and the editor still works.
(function () {
  "use strict";

  // An input the coordinator typed into stays in view, even if its test does not use it:
  // the server will say so next to the condition rather than the value vanishing unseen.
  function keepShown(box) {
    var input = box.querySelector("input, select, textarea");
    return input !== null && input.value.trim() !== "";
  }

  function update(scope, chosen) {
    scope.querySelectorAll("[data-show-for]").forEach(function (box) {
      var wanted = box.getAttribute("data-show-for").split(" ").indexOf(chosen) !== -1;
      box.hidden = !(wanted || keepShown(box));
    });
  }

  function refresh(select) {
    var condition = select.closest(".condition");
    if (condition && select.closest(".condition-op")) {
      update(condition, select.value);
    }
    var rule = select.closest(".rule-edit");
    if (rule && select.closest(".rule-match-field")) {
      update(rule.querySelector(".rule-grid"), select.value);
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches(".condition-op select, .rule-match-field select")) {
      refresh(event.target);
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".condition-op select, .rule-match-field select").forEach(refresh);
  });
})();
