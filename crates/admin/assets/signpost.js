// signpost status page: keeps the data-live sections fresh, searches as you type, explains in place.
// The server renders every piece of HTML; this script only fetches fragments
// (/fragments/live, /fragments/explain) and swaps them in. Without it the
// page still works: both forms are plain GET forms.
"use strict";
(function () {
  const REFRESH_MS = 2000;
  const updated = document.getElementById("updated");
  const search = document.getElementById("search");
  const explainForm = document.getElementById("explain-form");
  const explanation = document.getElementById("explanation");
  let timer = null;
  let inFlight = false;

  function pageQuery() {
    const params = new URLSearchParams();
    if (search.value) params.set("search", search.value);
    const name = document.getElementById("explain-name").value;
    const client = document.getElementById("explain-client").value;
    if (name && client) { params.set("name", name); params.set("client", client); }
    const text = params.toString();
    history.replaceState(null, "", text ? "/?" + text : "/");
  }

  async function fetchText(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok && response.status !== 400 && response.status !== 404) {
      throw new Error("HTTP " + response.status);
    }
    return response.text();
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const html = await fetchText("/fragments/live?search=" + encodeURIComponent(search.value));
      const fresh = document.createElement("template");
      fresh.innerHTML = html;
      for (const section of Array.from(fresh.content.querySelectorAll("section[data-live]"))) {
        const current = document.getElementById(section.id);
        if (current && current.outerHTML !== section.outerHTML) current.replaceWith(section);
      }
      updated.textContent = "live · updated " + new Date().toLocaleTimeString();
      updated.className = "meta";
    } catch (error) {
      updated.textContent = "disconnected (" + error.message + "), retrying";
      updated.className = "meta problem";
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async function tick() {
      if (!document.hidden) await refresh();
      timer = setTimeout(tick, REFRESH_MS);
    }, REFRESH_MS);
  }

  let typing = null;
  search.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () { pageQuery(); refresh(); }, 150);
  });
  document.getElementById("search-form").addEventListener("submit", function (event) {
    event.preventDefault();
    pageQuery();
    refresh();
  });

  explainForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    const params = new URLSearchParams(new FormData(explainForm));
    explanation.textContent = "…";
    try {
      explanation.innerHTML = await fetchText("/fragments/explain?" + params.toString());
    } catch (error) {
      explanation.textContent = "explain failed: " + error.message;
    }
    pageQuery();
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  refresh();
  schedule();
})();
