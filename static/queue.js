// flapwatch: checks saved on this tablet while the network was down, kept in IndexedDB until
// they are sent. Shared by the pages and the service worker (importScripts).
/* exported flapwatchQueue */
var flapwatchQueue = (function () {
  "use strict";
  var DB = "flapwatch", STORE = "unsent-checks";

  function open() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE, { keyPath: "key" });
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }
  function run(mode, work) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var transaction = db.transaction(STORE, mode);
        var result = work(transaction.objectStore(STORE));
        transaction.oncomplete = function () { db.close(); resolve(result && result.result); };
        transaction.onerror = function () { db.close(); reject(transaction.error); };
      });
    });
  }
  return {
    // One entry per check, keyed by the form's idempotency key: saving it again replaces it.
    put: function (entry) { return run("readwrite", function (s) { s.put(entry); }); },
    remove: function (key) { return run("readwrite", function (s) { s.delete(key); }); },
    all: function () { return run("readonly", function (s) { return s.getAll(); }); }
  };
})();
