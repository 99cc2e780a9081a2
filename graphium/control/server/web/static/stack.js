// The stack page, live: the server renders the stack's state at every batch of its events and
// sends it over server-sent events; this swaps it in. Nothing interactive lives inside #live,
// so keyboard focus is never lost to an update.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var status = document.getElementById("stream-status");
  if (!live || !status || !window.EventSource || document.getElementById("gone")) {
    if (status) { status.textContent = ""; }
    return;
  }
  var source = new EventSource(live.getAttribute("data-events"));
  var ended = false;
  source.addEventListener("open", function () { status.textContent = "Live: updates as they happen."; });
  source.addEventListener("state", function (event) {
    live.innerHTML = event.data;
    live.setAttribute("data-updated", String(Date.now()));
    if (window.graphiumOnState) { window.graphiumOnState(event); }
  });
  source.addEventListener("gone", function () {
    ended = true;
    source.close();
    status.textContent = "The stack is deleted.";
    var del = document.getElementById("delete-link");
    if (del) { del.remove(); }
  });
  source.addEventListener("error", function () {
    if (ended) { return; }
    status.textContent = source.readyState === EventSource.CLOSED
      ? "Live updates stopped: reload the page."
      : "Reconnecting…";
  });
})();
