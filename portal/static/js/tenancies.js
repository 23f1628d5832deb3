// Tenancy pages, progressively enhanced (each works without this file):
// - the create form shows only the shapes of the chosen region, and the custom-size,
//   image and workspace fields only when they apply;
// - a tenancy page that is still moving (provisioning, releasing, cleaning, resizing)
//   follows it: the live part is fetched again every few seconds and swapped in, until
//   the tenancy settles.
(function () {
  "use strict";

  // Forms that destroy something ask first (portal.js does it for forms present at load;
  // forms swapped in later get it here).
  function confirmForms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });
  }

  // --- create form ----------------------------------------------------------------------
  var createForm = document.getElementById("create-form");
  if (createForm) {
    var region = createForm.querySelector("select[name=region]");
    var kind = createForm.querySelector("select[name=kind]");
    var custom = document.getElementById("custom-size");
    var customRadio = document.getElementById("t-shape-custom");
    var image = createForm.querySelector(".field--image");
    var workspace = createForm.querySelector(".field--workspace");
    var workspaceOn = document.getElementById("t-workspace-on");
    var workspaceFields = document.getElementById("workspace-fields");
    var rows = createForm.querySelectorAll(".shape-picker__row");

    var sync = function () {
      var chosen = region ? region.value : "any";
      rows.forEach(function (row) {
        var fits = chosen === "any" || row.getAttribute("data-region") === chosen;
        row.hidden = !fits;
        var radio = row.querySelector("input[type=radio]");
        if (!fits && radio && radio.checked) {
          radio.checked = false;
          if (customRadio) {
            customRadio.checked = true;
          }
        }
      });
      if (custom && customRadio) {
        custom.hidden = !customRadio.checked;
      }
      if (image && kind) {
        image.hidden = kind.value !== "bare_metal";
      }
      if (workspace && kind) {
        // A workspace runs on Kubernetes only; one ticked under another kind is kept
        // visible so the refusal next to it can be read.
        workspace.hidden = kind.value !== "kubernetes" && !(workspaceOn && workspaceOn.checked);
      }
      if (workspaceFields && workspaceOn) {
        workspaceFields.hidden = !workspaceOn.checked;
      }
    };
    createForm.addEventListener("change", sync);
    sync();
  }

  // --- a tenancy that is moving ---------------------------------------------------------
  var live = document.getElementById("tenancy-live");
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  var delay = 2000;
  var failures = 0;

  function busy() {
    // Never swap the part the person is typing in or about to press.
    var active = document.activeElement;
    return active && live.contains(active) && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName);
  }

  function schedule() {
    window.setTimeout(poll, delay * Math.min(8, Math.pow(2, failures)));
  }

  function poll() {
    if (document.hidden || busy()) {
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
          .getElementById("tenancy-live");
        if (!fresh) {
          throw new Error("no live part in the answer");
        }
        failures = 0;
        if (fresh.getAttribute("data-state") !== live.getAttribute("data-state")) {
          var adopted = document.importNode(fresh, true);
          live.replaceWith(adopted);
          live = adopted;
          confirmForms(live);
          var badge = live.querySelector(".tenancy-state .badge");
          var announce = document.getElementById("tenancy-announce");
          if (badge && announce) {
            announce.textContent = "The tenancy is now " + badge.textContent.trim() + ".";
          }
        } else {
          // Same state: only the timeline may have grown.
          var oldEvents = live.querySelector(".timeline");
          var newEvents = fresh.querySelector(".timeline");
          if (oldEvents && newEvents && oldEvents.innerHTML !== newEvents.innerHTML) {
            oldEvents.replaceWith(document.importNode(newEvents, true));
          }
        }
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
