// Test script: marks the page so the test can see that the hashed,
// compressed script was fetched, decoded and run.
(function () {
  "use strict";
  var words = ["celeriac", "static", "serves", "hashed", "assets", "with", "brotli", "zstd", "and", "gzip"];
  var parts = [];
  for (var i = 0; i < words.length; i++) {
    parts.push(words[i].toUpperCase().toLowerCase());
  }
  window.celeriacApp = { loaded: true, sentence: parts.join(" "), sum: 20 + 22 };
  document.documentElement.setAttribute("data-app", "loaded-" + window.celeriacApp.sum);
})();
