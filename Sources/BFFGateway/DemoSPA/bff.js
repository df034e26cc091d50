// bff.js — a tiny helper for SPAs behind swift-bff (or Duende.BFF): no tokens, only same-origin calls.
(function () {
  "use strict";
  const headers = { "X-CSRF": "1" };

  async function user() {
    const response = await fetch("/bff/user", { headers, credentials: "same-origin" });
    if (response.status === 401) return null;
    if (!response.ok) throw new Error("/bff/user answered " + response.status);
    return response.json();
  }

  function claim(claims, type) {
    const found = (claims || []).find((c) => c.type === type);
    return found ? found.value : undefined;
  }

  function login(returnUrl) {
    const target = returnUrl || window.location.pathname + window.location.search;
    window.location.assign("/bff/login?returnUrl=" + encodeURIComponent(target));
  }

  function logout(claims) {
    const url = claim(claims, "bff:logout_url");
    window.location.assign(url || "/bff/logout");
  }

  function api(path, options) {
    const merged = Object.assign({ credentials: "same-origin" }, options || {});
    merged.headers = Object.assign({}, headers, (options && options.headers) || {});
    return fetch(path, merged);
  }

  window.bff = { user, claim, login, logout, fetch: api };
})();
