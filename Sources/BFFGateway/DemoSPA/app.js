(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let claims = null;

  async function refresh() {
    try {
      claims = await window.bff.user();
    } catch (error) {
      $("status").textContent = "Could not reach the BFF: " + error.message;
      return;
    }
    $("anonymous").hidden = claims !== null;
    $("authenticated").hidden = claims === null;
    if (claims) {
      const name = window.bff.claim(claims, "name") || window.bff.claim(claims, "preferred_username") || window.bff.claim(claims, "sub");
      $("user-name").textContent = name;
      $("claims").textContent = JSON.stringify(claims, null, 2);
    }
  }

  async function callAPI() {
    $("api-result").textContent = "…";
    const response = await window.bff.fetch("/api/weatherforecast");
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
    $("api-result").textContent = response.status + "\n" + shown;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("click", () => window.bff.login("/"));
    $("logout").addEventListener("click", () => window.bff.logout(claims));
    $("call-api").addEventListener("click", callAPI);
    refresh();
  });
})();
