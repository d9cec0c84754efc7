// The session page's behaviour: plays the recorded terminal, jumps to
// observed commands, follows an open session, shows the chain status.
// Everything recorded is put in the page with textContent, never as
// markup; the page reads the same without this script.
"use strict";
(function () {
  var playerElement = document.getElementById("player");
  var player = null;
  if (playerElement && window.AsciinemaPlayer) {
    player = window.AsciinemaPlayer.create(playerElement.dataset.cast, playerElement, {
      fit: "width",
      idleTimeLimit: 2,
      preload: true,
    });
    // The browser tests drive the player through this handle.
    window.portcullisPlayer = player;
  }

  document.querySelectorAll("button[data-marker]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!player) return;
      var marker = Number(button.dataset.marker);
      Promise.resolve(player.seek({ marker: marker })).then(function () {
        player.pause();
      });
    });
  });

  var chain = document.getElementById("chain");
  if (chain) {
    fetch(chain.dataset.src, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (report) {
        chain.className = report.ok ? "intact" : "broken";
        if (report.ok) {
          chain.textContent =
            "chain: intact (this session's rows verify; " + report.rows + " rows walked)";
        } else {
          chain.textContent =
            "chain: BROKEN: " +
            report.problems.map(function (p) { return p.detail; }).join("; ");
        }
      })
      .catch(function (e) {
        chain.textContent = "chain: not checked (" + e.message + ")";
      });
  }

  var live = document.getElementById("live");
  if (live && window.EventSource) {
    var state = document.getElementById("state");
    var source = new EventSource(live.dataset.src);
    source.addEventListener("row", function (e) {
      live.appendChild(document.createTextNode(e.data + "\n"));
    });
    source.addEventListener("end", function () {
      source.close();
      if (state) state.textContent = "ended (reload for the whole transcript)";
    });
  }
})();
