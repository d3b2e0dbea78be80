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
  // Upload buckets: a file dropped or chosen goes up as one PUT of its bytes, its progress shown;
  // the server answers where to go next.
  function uploadForm(el) { return el.closest && el.closest("form[data-upload]"); }
  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest("[data-drop-zone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("drop-zone-over");
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-drop-zone]");
    if (zone) zone.classList.remove("drop-zone-over");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-drop-zone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("drop-zone-over");
    var input = zone.querySelector("input[type=file]");
    if (input && event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      var form = uploadForm(zone);
      var key = form && form.querySelector("input[name=key]");
      if (key && !key.value) key.value = input.files[0].name;
    }
  });
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("form[data-upload] input[type=file]") || !input.files.length) return;
    var key = uploadForm(input).querySelector("input[name=key]");
    if (key && !key.value) key.value = input.files[0].name;
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-upload]")) return;
    event.preventDefault();
    var file = form.querySelector("input[type=file]").files[0];
    var key = form.querySelector("input[name=key]").value;
    var progress = form.querySelector("[data-upload-progress]");
    var status = form.querySelector("[data-upload-status]");
    var button = form.querySelector("button[type=submit]");
    if (!file || !key) return;
    var path = key.split("/").map(encodeURIComponent).join("/");
    var xhr = new XMLHttpRequest();
    xhr.open("PUT", form.dataset.upload + path);
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("input[name=csrf_token]").value);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    progress.hidden = false;
    progress.value = 0;
    button.disabled = true;
    status.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var percent = Math.floor((e.loaded / e.total) * 100);
      progress.value = percent;
      status.textContent = "Uploading… " + percent + " %";
    });
    xhr.addEventListener("load", function () {
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && answer.next) {
        progress.value = 100;
        status.textContent = "Uploaded: version " + answer.versionId;
        window.location.assign(answer.next);
      } else {
        button.disabled = false;
        status.textContent = answer.message || ("The upload failed (" + xhr.status + ").");
      }
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      status.textContent = "The upload was interrupted; nothing was stored.";
    });
    xhr.send(file);
  });
})();
