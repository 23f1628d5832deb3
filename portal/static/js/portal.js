// Small progressive enhancements; every page works without them.
(function () {
  "use strict";
  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");

  // Narrow screens: the main navigation collapses behind the Menu button.
  var toggle = document.querySelector(".nav-toggle");
  var nav = document.getElementById("app-nav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", String(!open));
      nav.classList.toggle("app-nav--open", !open);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && nav.classList.contains("app-nav--open")) {
        toggle.setAttribute("aria-expanded", "false");
        nav.classList.remove("app-nav--open");
        toggle.focus();
      }
    });
  }

  // The user menu closes on Escape or a click elsewhere, like a native menu.
  var menu = document.querySelector(".user-menu");
  if (menu) {
    document.addEventListener("click", function (event) {
      if (menu.open && !menu.contains(event.target)) {
        menu.open = false;
      }
    });
    menu.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  }

  // Forms that destroy something ask first (the server does not depend on it).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // Copy buttons: shown only where the clipboard API exists.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) {
      return;
    }
    var status = button.parentElement.parentElement.querySelector("[role=status]");
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () {
          button.textContent = "Copied";
          if (status) {
            status.textContent = "The secret is on your clipboard.";
          }
        },
        function () {
          if (status) {
            status.textContent = "Copying failed; select the secret and copy it by hand.";
          }
        }
      );
    });
  });
})();
