// flapwatch service worker: the app shell for a board opened without network, and a check
// whose Save cannot reach the server kept on the tablet (never lost) until it is sent.
/* global flapwatchQueue */
"use strict";
importScripts("/static/queue.js");

var SHELL = "flapwatch-shell-v1";
var PAGES = "flapwatch-pages";  // the last boards loaded, for opening one offline
var SHELL_FILES = ["/static/flapwatch.css", "/static/flapwatch.js", "/static/queue.js", "/offline"];
var CHECK_FORM = /^\/reconstructions\/\d+\/checks\/new$/;
var BOARD = /^\/units\/[^/]+\/board$/;
var UNAVAILABLE = [502, 503, 504];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL).then(function (cache) { return cache.addAll(SHELL_FILES); }));
  self.skipWaiting();
});
self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function keep(form, url) {
  return {
    key: form.get("idempotency_key"),
    url: url.pathname,
    fields: Array.from(form.entries()).filter(function (pair) { return pair[0] !== "csrf_token"; }),
    user: form.get("offline_user"),
    patient: form.get("offline_patient"),
    board: form.get("offline_board"),
    savedAt: Date.now()
  };
}

function savedHere(entry) {
  var board = entry.board || "/";
  return Response.redirect(board + (board.indexOf("?") < 0 ? "?" : "&") + "kept=1", 303);
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }

  if (request.method === "POST" && CHECK_FORM.test(url.pathname)) {
    var copy = request.clone();
    var keepOnTablet = function () {
      // Not saved: keep the check on the tablet, with its key.
      return copy.formData().then(function (form) {
        var entry = keep(form, url);
        if (!entry.key) { throw new Error("a check form without its key"); }
        return flapwatchQueue.put(entry).then(function () { return savedHere(entry); });
      });
    };
    event.respondWith(fetch(request).then(function (response) {
      // The server, or the proxy before it, answered that it could not save it now (its
      // database down, say): as good as no answer.
      return UNAVAILABLE.indexOf(response.status) >= 0 ? keepOnTablet() : response;
    }, keepOnTablet));
    return;
  }
  if (request.method !== "GET") { return; }
  if (url.pathname === "/login") {
    // Logged out (or off): no patient's board stays in this tablet's storage.
    event.waitUntil(caches.delete(PAGES));
    return;
  }
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(fetch(request).then(function (response) {
      var copy = response.clone();
      caches.open(SHELL).then(function (cache) { cache.put(request, copy); });
      return response;
    }).catch(function () { return caches.match(request); }));
    return;
  }
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).then(function (response) {
      if (BOARD.test(url.pathname) && response.ok && !response.redirected) {
        var copy = response.clone();
        caches.open(PAGES).then(function (cache) { cache.put(url.pathname, copy); });
      }
      return response;
    }).catch(function () {
      return caches.match(url.pathname, { cacheName: PAGES }).then(function (page) {
        return page || caches.match("/offline");
      });
    }));
  }
});

// A page of the escalation chain (services/channels.push_notification): shown even with no
// flapwatch page open; tapping it opens (or focuses) the escalation's page.
self.addEventListener("push", function (event) {
  var page = {};
  try { page = event.data ? event.data.json() : {}; } catch (error) { page = {}; }
  var title = page.title || "flapwatch: an escalation needs you";
  event.waitUntil(self.registration.showNotification(title, {
    body: page.body || "Open flapwatch to see it.",
    tag: page.tag || "flapwatch",
    renotify: true,
    requireInteraction: true,
    data: { url: page.url || "/escalations" }
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var path = (event.notification.data && event.notification.data.url) || "/escalations";
  if (path.charAt(0) !== "/" || path.charAt(1) === "/") { path = "/escalations"; }  // ours only
  var url = new URL(path, self.location.origin).href;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true })
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) { return windows[i].focus(); }
      }
      return self.clients.openWindow(url);
    }));
});
