// Endpoint pages, progressively enhanced (each works without this file):
// - the snippets of "Call it" get a Copy button;
// - an endpoint that is still moving (deploying, degraded, deleting, replicas starting)
//   is followed: the live part is fetched again every few seconds and swapped in, until
//   it settles.
(function () {
  "use strict";

  // --- copy buttons -----------------------------------------------------------------------
  if (navigator.clipboard) {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) {
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent).then(function () {
          var announce = document.getElementById("endpoint-announce");
          if (announce) {
            announce.textContent = "Copied.";
          }
        });
      });
    });
  }

  // --- an endpoint that is moving ---------------------------------------------------------
  var live = document.getElementById("endpoint-live");
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  var delay = 2000;
  var failures = 0;

  function schedule() {
    window.setTimeout(poll, delay * Math.min(8, Math.pow(2, failures)));
  }

  function swap(fresh) {
    if (fresh.getAttribute("data-state") !== live.getAttribute("data-state")) {
      var adopted = document.importNode(fresh, true);
      live.replaceWith(adopted);
      live = adopted;
      var badge = live.querySelector(".endpoint-state .badge");
      var announce = document.getElementById("endpoint-announce");
      if (badge && announce) {
        announce.textContent = "The endpoint is now " + badge.textContent.trim() + ".";
      }
      return;
    }
    // Same state: only the timeline may have grown.
    var oldEvents = live.querySelector(".timeline");
    var newEvents = fresh.querySelector(".timeline");
    if (oldEvents && newEvents && oldEvents.innerHTML !== newEvents.innerHTML) {
      oldEvents.replaceWith(document.importNode(newEvents, true));
    }
  }

  function poll() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(live.getAttribute("data-live-url"), {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
      cache: "no-store",
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser()
          .parseFromString(html, "text/html")
          .getElementById("endpoint-live");
        if (!fresh) {
          throw new Error("no live part in the answer");
        }
        failures = 0;
        swap(fresh);
        if (live.hasAttribute("data-working")) {
          schedule();
        }
      })
      .catch(function () {
        failures += 1;
        schedule();
      });
  }

  if (live.hasAttribute("data-working")) {
    schedule();
  }
})();
