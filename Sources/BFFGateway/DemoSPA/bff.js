// bff.js — a tiny helper for SPAs behind swift-bff (or Duende.BFF): no tokens, only same-origin calls.
(function () {
  "use strict";
  const headers = { "X-CSRF": "1" };
  const loginParameter = "bff-login";

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

  function here() {
    const url = new URL(window.location.href);
    url.searchParams.delete(loginParameter);
    return url.pathname + url.search + url.hash;
  }

  function login(returnUrl) {
    window.location.assign("/bff/login?returnUrl=" + encodeURIComponent(returnUrl || here()));
  }

  function logout(claims) {
    const url = claim(claims, "bff:logout_url");
    window.location.assign(url || "/bff/logout");
  }

  // Silent login in a hidden iframe (prompt=none). Browsers that block third-party cookies keep
  // the IdP's session cookie out of the frame, so this answers false there: see ensureSession.
  function silentLogin(timeoutMs) {
    return new Promise((resolve) => {
      const frame = document.createElement("iframe");
      frame.style.display = "none";
      frame.title = "silent login";
      let timer = null;
      function done(result) {
        window.removeEventListener("message", listener);
        clearTimeout(timer);
        frame.remove();
        resolve(result);
      }
      function listener(event) {
        if (event.origin !== window.location.origin || event.source !== frame.contentWindow) return;
        if (!event.data || event.data.source !== "bff-silent-login") return;
        done(event.data.isLoggedIn === true);
      }
      window.addEventListener("message", listener);
      timer = setTimeout(() => done(false), timeoutMs || 5000);
      frame.src = "/bff/silent-login";
      document.body.appendChild(frame);
    });
  }

  // The claims of a session, trying without the user's help: the current session, then silent
  // login in an iframe, then once per page a top-level silent login (prompt=none as a navigation,
  // which works without third-party cookies and comes back with ?bff-login=success|none).
  // Resolves with the claims, or null when the user must sign in; the page may navigate away.
  async function ensureSession(options) {
    const settings = Object.assign({ iframe: true, topLevel: true }, options || {});
    let claims = await user();
    if (claims) return claims;
    const url = new URL(window.location.href);
    const outcome = url.searchParams.get(loginParameter);
    if (outcome) {
      url.searchParams.delete(loginParameter);
      window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
      return outcome === "success" ? user() : null;
    }
    if (settings.iframe && (await silentLogin(settings.timeoutMs))) {
      claims = await user();
      if (claims) return claims;
    }
    if (settings.topLevel) {
      window.location.assign("/bff/login?prompt=none&returnUrl=" + encodeURIComponent(here()));
      return new Promise(() => {});  // navigating away
    }
    return null;
  }

  let redirecting = false;

  // Same-origin API calls with the anti-forgery header. A 401 from the BFF itself sends the
  // browser, once per page, to the login and back here: `unauthenticated` and `session-expired`
  // to a plain login, `step-up-required` to one asking for its acrValues/maxAge. Other 401s (an
  // API's own) are returned as they are; `loginOn401: false` turns the redirect off.
  async function api(path, options) {
    const merged = Object.assign({ credentials: "same-origin" }, options || {});
    merged.headers = Object.assign({}, headers, (options && options.headers) || {});
    const loginOn401 = merged.loginOn401 !== false;
    delete merged.loginOn401;
    const response = await fetch(path, merged);
    if (response.status !== 401 || !loginOn401 || redirecting) return response;
    let problem = null;
    try { problem = await response.clone().json(); } catch (_) { return response; }
    const type = problem && problem.type;
    const parameters = new URLSearchParams({ returnUrl: here() });
    if (type === "urn:bff:problem:step-up-required") {
      if (problem.acrValues) parameters.set("acrValues", problem.acrValues);
      if (problem.maxAge !== undefined) parameters.set("maxAge", String(problem.maxAge));
    } else if (type !== "urn:bff:problem:unauthenticated" && type !== "urn:bff:problem:session-expired") {
      return response;
    }
    redirecting = true;
    window.location.assign("/bff/login?" + parameters.toString());
    return response;
  }

  window.bff = { user, claim, login, logout, fetch: api, silentLogin, ensureSession };
})();
