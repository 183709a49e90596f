// Served by `celeriac static` under its hashed name. Marks the page so
// the end-to-end test can see, in Chromium's DOM, that the script loaded.
document.body.classList.add("js-ready");
document.body.dataset.staticJs = "loaded";
