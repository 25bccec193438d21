// Notifications on this phone: the escalation queue's switch. It asks the browser for a Web
// Push subscription to the server's VAPID key and sends it to /push/subscriptions; the service
// worker (sw.js) shows each notification and opens its escalation when tapped.
"use strict";
(function () {
  var box = document.querySelector("[data-push-key]");
  if (!box || !("serviceWorker" in navigator) || !("PushManager" in window) ||
      !("Notification" in window)) { return; }
  var state = box.querySelector("[data-push-state]");
  var on = box.querySelector("[data-push-on]");
  var off = box.querySelector("[data-push-off]");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  function keyBytes(text) {
    var base64 = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }
  function send(url, subscription) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(subscription)
    }).then(function (response) {
      if (!response.ok) { throw new Error("the server answered " + response.status); }
      return response.json();
    });
  }
  function show(words, subscribed) {
    state.textContent = words;
    on.hidden = subscribed;
    off.hidden = !subscribed;
  }
  function current() {
    return navigator.serviceWorker.ready.then(function (registration) {
      return registration.pushManager.getSubscription();
    });
  }

  on.addEventListener("click", function () {
    on.disabled = true;
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") {
        throw new Error("notifications are blocked for this site in the browser's settings");
      }
      return navigator.serviceWorker.ready;
    }).then(function (registration) {
      return registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(box.getAttribute("data-push-key"))
      });
    }).then(function (subscription) {
      return send("/push/subscriptions", subscription.toJSON());
    }).then(function () {
      show("on", true);
    }).catch(function (error) {
      show("off (" + error.message + ")", false);
    }).then(function () { on.disabled = false; });
  });

  off.addEventListener("click", function () {
    current().then(function (subscription) {
      if (!subscription) { return null; }
      var endpoint = subscription.endpoint;
      return subscription.unsubscribe().then(function () {
        return send("/push/subscriptions/remove", { endpoint: endpoint });
      });
    }).then(function () { show("off", false); }, function (error) {
      show("on (could not turn off: " + error.message + ")", true);
    });
  });

  box.hidden = false;
  if (Notification.permission === "denied") {
    show("blocked in the browser's settings", false);
    on.disabled = true;
    return;
  }
  current().then(function (subscription) {
    if (subscription) {
      // Sent again each visit: the server learns of a subscription the browser renewed.
      return send("/push/subscriptions", subscription.toJSON()).then(function () {
        show("on", true);
      });
    }
    show("off", false);
    return null;
  }).catch(function () { show("off", false); });
})();
