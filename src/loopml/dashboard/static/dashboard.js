/* loopml dashboard: draws the figures the page carries as JSON, and the admin buttons.
   Served as a static, cached file: the pages run no inline script. */
(function () {
  "use strict";
  var TOKEN_KEY = "loopml.admin_token";

  function drawFigures() {
    var specs = document.querySelectorAll("script.figure[type='application/json']");
    for (var i = 0; i < specs.length; i++) {
      var target = document.getElementById(specs[i].getAttribute("data-target"));
      if (!target || !window.Plotly) continue;
      var figure = JSON.parse(specs[i].textContent);
      window.Plotly.newPlot(target, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
  }

  function say(text, ok) {
    var out = document.getElementById("admin-result");
    out.textContent = text;  /* text, never markup */
    out.className = ok ? "ok" : "bad";
  }

  function tokenState() {
    var state = document.getElementById("admin-token-state");
    if (state) state.textContent = sessionStorage.getItem(TOKEN_KEY) ? "a token is kept for this tab" : "no token kept";
  }

  function moveAlias(button, panel) {
    var token = sessionStorage.getItem(TOKEN_KEY) || document.getElementById("admin-token").value;
    var reason = document.getElementById("admin-reason").value.trim();
    var version = parseInt(button.getAttribute("data-version"), 10);
    if (!token) { say("Paste the admin token first (serve.admin_token).", false); return; }
    if (!reason) { say("Say why in the reason field: it is kept in the alias history.", false); return; }
    var model = panel.getAttribute("data-model"), alias = panel.getAttribute("data-alias");
    var url = "/v1/models/" + encodeURIComponent(model) + "/aliases/" + encodeURIComponent(alias);
    button.disabled = true;
    fetch(url, {
      method: "POST",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify({ version: version, reason: reason, actor: "dashboard" }),
      credentials: "omit"
    }).then(function (response) {
      return response.text().then(function (body) {
        if (response.ok) {
          say(alias + " now points at version " + version + ". Reloading ...", true);
          setTimeout(function () { window.location.reload(); }, 800);
          return;
        }
        var message = body;
        try { var parsed = JSON.parse(body); message = (parsed.error && parsed.error.message) || parsed.error || parsed.detail || body; } catch (e) { /* plain text */ }
        if (response.status === 404) message = "the admin API is not enabled on this server (serve.admin_token)";
        say("Refused (HTTP " + response.status + "): " + (typeof message === "string" ? message : JSON.stringify(message)), false);
      });
    }).catch(function (error) { say("Could not reach the API: " + error, false); })
      .finally(function () { button.disabled = false; });
  }

  function wireAdmin() {
    var panel = document.getElementById("admin");
    if (!panel) return;
    document.getElementById("admin-keep").addEventListener("click", function () {
      var field = document.getElementById("admin-token");
      if (field.value) sessionStorage.setItem(TOKEN_KEY, field.value);
      field.value = "";
      tokenState();
    });
    document.getElementById("admin-forget").addEventListener("click", function () {
      sessionStorage.removeItem(TOKEN_KEY);
      tokenState();
    });
    var buttons = panel.querySelectorAll("button.admin-move");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) { moveAlias(event.currentTarget, panel); });
    }
    tokenState();
  }

  function start() { drawFigures(); wireAdmin(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
