// flapwatch: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

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

  // A field whose answer differs from the previous check's is marked as the nurse taps or
  // types: the comparison is shown, the previous value is never copied in.
  function markChange(container) {
    var previous = container.getAttribute("data-previous");
    var note = container.querySelector("[data-change-note]");
    var now = "";
    var checked = container.querySelector("input[type=radio]:checked");
    var text = container.querySelector("input[type=text]");
    if (checked) { now = checked.value; }
    if (text) { now = text.value.trim().replace(",", "."); }
    var changed = now !== "" && (text ? parseFloat(now) !== parseFloat(previous) : now !== previous);
    container.classList.toggle("is-changed", changed);
    if (note) {
      note.textContent = changed ? "changed" : "";
    }
  }
  document.addEventListener("change", function (event) {
    var container = event.target.closest && event.target.closest("[data-previous]");
    if (container) { markChange(container); }
  });
  document.addEventListener("input", function (event) {
    var container = event.target.closest && event.target.closest("[data-previous]");
    if (container) { markChange(container); }
  });

  // A shared tablet logs its user off after the unit's minutes without use, with a minute's
  // warning. Use is a tap or a key; while the nurse is busy on one page the server is told
  // now and then (it keeps the same limit for a tablet whose page is not running this).
  function watchForIdle() {
    var body = document.body;
    var limit = parseInt(body.getAttribute("data-idle-seconds"), 10);
    var form = document.getElementById("logout-form");
    var dialog = document.getElementById("idle-warning");
    if (!limit || !form) { return; }
    var warning = Math.min(60, Math.floor(limit / 2));
    var left = parseInt(body.getAttribute("data-idle-left"), 10);
    var lastUse = Date.now() - (isNaN(left) ? 0 : (limit - left) * 1000);
    var lastReport = Date.now();
    var loggingOff = false;

    function report() {
      lastReport = Date.now();
      fetch(body.getAttribute("data-alive-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() }
      }).catch(function () { /* offline: the next page or report tells the server */ });
    }
    function used() {
      lastUse = Date.now();
      if (dialog && dialog.open) { dialog.close(); }
      if (Date.now() - lastReport > 60000) { report(); }
    }
    ["pointerdown", "keydown", "input", "wheel"].forEach(function (name) {
      document.addEventListener(name, used, { capture: true, passive: true });
    });
    if (dialog) {
      dialog.querySelector("[data-idle-stay]").addEventListener("click", function () {
        used();
        report();
      });
    }
    setInterval(function () {
      var idle = (Date.now() - lastUse) / 1000;
      if (idle >= limit && !loggingOff) {
        loggingOff = true;
        var reason = document.createElement("input");
        reason.type = "hidden";
        reason.name = "reason";
        reason.value = "idle";
        form.appendChild(reason);
        form.submit();
      } else if (idle >= limit - warning && dialog) {
        dialog.querySelector("[data-idle-countdown]").textContent = String(Math.ceil(limit - idle));
        if (!dialog.open) { dialog.showModal(); }
      }
    }, 1000);
  }

  // Checks saved on this tablet while the network was down (static/sw.js keeps them): shown
  // until sent, and sent, with their keys, as soon as the nurse who saved them is logged in
  // with a connection. The form's key makes a second arrival of the same check a no-op.
  function unsentBanner(entries, note) {
    var banner = document.getElementById("unsent-checks");
    if (!banner) { return; }
    if (!entries.length && !note) { banner.hidden = true; return; }
    var lines = entries.map(function (entry) {
      var at = new Date(entry.savedAt).toTimeString().slice(0, 5);
      return entry.patient + " (saved " + at + " by " + entry.user + ")";
    });
    banner.querySelector("[data-unsent-text]").textContent = note || (
      (entries.length === 1 ? "1 check is" : entries.length + " checks are") +
      " saved on this tablet — not yet sent: " + lines.join("; ") +
      ". It is sent by itself when the connection returns" +
      (document.body.getAttribute("data-username") ? "." : " and its nurse logs in."));
    banner.hidden = false;
  }

  var sending = false;
  function sendUnsent() {
    if (typeof flapwatchQueue === "undefined" || !window.indexedDB || sending) { return; }
    var user = document.body.getAttribute("data-username");
    flapwatchQueue.all().then(function (entries) {
      unsentBanner(entries);
      var mine = entries.filter(function (entry) { return entry.user === user; });
      if (!user || !mine.length || navigator.onLine === false) { return; }
      sending = true;
      var sent = 0;
      return mine.reduce(function (previous, entry) {
        return previous.then(function () {
          var body = new FormData();
          entry.fields.forEach(function (pair) { body.append(pair[0], pair[1]); });
          body.append("csrf_token", csrfToken());
          return fetch(entry.url, { method: "POST", body: body, credentials: "same-origin" })
            .then(function (response) {
              var landed = new URL(response.url);
              // Landing on a board with ?kept=1 means the service worker kept it again
              // (the server still cannot save it): not sent.
              if (response.ok && response.redirected && landed.pathname !== "/login" &&
                  landed.searchParams.get("kept") !== "1") {
                sent += 1;
                return flapwatchQueue.remove(entry.key);
              }
            }, function () { /* still offline: kept for the next try */ });
        });
      }, Promise.resolve()).then(function () {
        sending = false;
        return flapwatchQueue.all().then(function (left) {
          if (sent && !left.length) {
            unsentBanner([], (sent === 1 ? "The check" : "The " + sent + " checks") +
              " saved on this tablet " + (sent === 1 ? "was" : "were") + " sent.");
            if (document.querySelector("[data-refresh-seconds]")) {
              setTimeout(function () { window.location.replace(window.location.pathname); }, 1500);
            }
          } else {
            unsentBanner(left);
          }
        });
      });
    }).catch(function () { sending = false; });
  }
  window.addEventListener("online", sendUnsent);

  // The board and the escalation queue follow their units' event streams (server-sent
  // events): a change anywhere on the unit reloads the page within a second, instead of at the
  // next 30-second reload, which stays as the fallback when a stream is down.
  function followLive(page) {
    if (!page || !window.EventSource) { return; }
    var urls = (page.getAttribute("data-live") || "").split(" ").filter(Boolean);
    var pending = null;
    function reload() {
      if (document.visibilityState !== "visible") { pending = "hidden"; return; }
      var url = new URL(window.location.href);
      url.searchParams.set("refreshed", "1");
      window.location.replace(url.toString());
    }
    function changed() {
      if (pending) { return; }
      pending = setTimeout(reload, 250);  // a check and its escalation come together
    }
    document.addEventListener("visibilitychange", function () {
      if (pending === "hidden" && document.visibilityState === "visible") { reload(); }
    });
    urls.forEach(function (url) {
      var source = new EventSource(url);
      ["escalation.opened", "escalation.updated", "check.recorded", "flap.updated"].forEach(function (kind) {
        source.addEventListener(kind, changed);
      });
      source.addEventListener("open", function () { page.setAttribute("data-live-state", "open"); });
      source.addEventListener("error", function () { page.setAttribute("data-live-state", "retrying"); });
    });
  }

  // A check saved with photos: sent with its progress shown (photos take seconds on a ward's
  // Wi-Fi), after the photos are checked here for what the server would refuse anyway.
  var PHOTO_MAX = 3, PHOTO_MAX_BYTES = 20 * 1024 * 1024;
  function photoProblem(files) {
    if (files.length > PHOTO_MAX) { return "At most " + PHOTO_MAX + " photos with one check; " + files.length + " were chosen."; }
    for (var i = 0; i < files.length; i++) {
      if (files[i].size > PHOTO_MAX_BYTES) {
        return files[i].name + " is " + (files[i].size / 1048576).toFixed(1) + " MB: at most 20.0 MB.";
      }
    }
    return "";
  }
  function sendWithProgress(form, submitter) {
    var input = form.querySelector("input[type=file][name=photos]");
    var files = input ? input.files : [];
    if (!files.length) { return false; }
    var problem = photoProblem(files);
    var note = form.querySelector("[data-photo-problem]");
    if (problem) {
      if (!note) {
        note = document.createElement("p");
        note.className = "field-error";
        note.setAttribute("data-photo-problem", "");
        note.setAttribute("role", "alert");
        input.parentNode.appendChild(note);
      }
      note.textContent = problem + " Nothing was sent: choose again.";
      input.focus();
      return true;
    }
    var status = form.querySelector("[data-upload-status]");
    var bar = status.querySelector("progress"), words = status.querySelector("span");
    var total = 0;
    for (var i = 0; i < files.length; i++) { total += files[i].size; }
    status.hidden = false;
    words.textContent = "Sending the check and " + files.length + (files.length === 1 ? " photo" : " photos") +
      " (" + (total / 1048576).toFixed(1) + " MB)…";
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        bar.value = Math.round(100 * event.loaded / event.total);
        status.setAttribute("data-percent", String(bar.value));
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL &&
          xhr.responseURL !== window.location.href) {
        window.location.assign(xhr.responseURL);  // saved: where the Save goes (board, flagged)
        return;
      }
      document.open();  // refused (a field, a photo): the page says why, with what was typed
      document.write(xhr.responseText);
      document.close();
    });
    xhr.addEventListener("error", function () {
      status.hidden = true;
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
      form.setAttribute("data-plain-submit", "");  // the tablet keeps it, as any other Save
      if (form.requestSubmit) { form.requestSubmit(submitter || undefined); } else { form.submit(); }
    });
    var body = new FormData(form);
    if (submitter && submitter.name) { body.append(submitter.name, submitter.value); }  // the reason tapped
    xhr.send(body);
    return true;
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || form.hasAttribute("data-plain-submit")) { return; }
    if (form.hasAttribute("data-upload-progress") && sendWithProgress(form, event.submitter)) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".segment input[type=radio]").forEach(function (input) {
      input.dataset.wasChecked = input.checked ? "true" : "false";
    });
    document.querySelectorAll("[data-previous]").forEach(markChange);

    // The ward board reloads itself while it is on screen, so due/overdue stay current. The
    // reload is marked, so that it does not count as someone using the tablet.
    var board = document.querySelector("[data-refresh-seconds]");
    if (board) {
      var seconds = parseInt(board.getAttribute("data-refresh-seconds"), 10) || 60;
      setInterval(function () {
        if (document.visibilityState === "visible") {
          var url = new URL(window.location.href);
          url.searchParams.set("refreshed", "1");
          window.location.replace(url.toString());
        }
      }, seconds * 1000);
    }
    followLive(board);
    watchForIdle();
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js").catch(function () { /* pages work without */ });
    }
    var offline = document.getElementById("offline-note");
    if (offline && navigator.onLine === false) { offline.hidden = false; }
    sendUnsent();
  });
})();
