// Sluice's own script: small progressive enhancements. Everything works without it.
// Loaded as a file (the CSP forbids inline scripts), deferred, no dependencies.
(function () {
  "use strict";

  // Pipeline view: focusing or hovering an artifact chip highlights its producer and consumers.
  function chipsOf(name) {
    return document.querySelectorAll('.artifact-chip[data-artifact="' + CSS.escape(name) + '"]');
  }
  function highlight(event, on) {
    var chip = event.target.closest && event.target.closest(".artifact-chip");
    if (!chip) return;
    chipsOf(chip.dataset.artifact).forEach(function (c) {
      c.classList.toggle("artifact-related", on);
      var card = c.closest(".action-card");
      if (card) card.classList.toggle("action-related", on);
    });
  }
  ["mouseover", "focusin"].forEach(function (type) {
    document.addEventListener(type, function (e) { highlight(e, true); });
  });
  ["mouseout", "focusout"].forEach(function (type) {
    document.addEventListener(type, function (e) { highlight(e, false); });
  });

  // Import: a chosen file's text goes into the textarea named by data-fills.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file][data-fills]") || !input.files.length) return;
    var target = document.getElementById(input.dataset.fills);
    input.files[0].text().then(function (text) { if (target) target.value = text; });
  });

  // Editor: warn before leaving with unsaved changes (edits applied but not saved, marked by
  // data-unsaved, or typing not applied yet). Saving and Discard leave without asking.
  var typed = false;
  var leaving = false;
  document.addEventListener("input", function (event) {
    if (event.target.closest && event.target.closest("[data-editor]")) typed = true;
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.closest && event.detail.elt.closest("[data-editor-save]")) leaving = true;
  });
  document.addEventListener("htmx:afterSwap", function () { typed = false; leaving = false; });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-discard]")) leaving = true;
  });
  window.addEventListener("beforeunload", function (event) {
    if (leaving || (!typed && !document.querySelector("[data-unsaved]"))) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // Live pages: while their stream reconnects (the server restarting, the network), say so;
  // the stream's first message on reconnecting says "Live" again.
  document.addEventListener("htmx:sseError", function () {
    var status = document.getElementById("live-status");
    if (!status || !status.classList.contains("live-on")) return;
    status.classList.remove("live-on");
    status.classList.add("live-reconnecting");
    status.textContent = "Reconnecting…";
  });
})();
