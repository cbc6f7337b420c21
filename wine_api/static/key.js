// The API key, when the server needs one: kept in this tab's sessionStorage only, sent only as this server's
// Authorization header, never written to the console or into a URL.
"use strict";
const wineKey = (() => {
  const slot = "wine_api.key";
  const listeners = [];
  const read = () => { try { return sessionStorage.getItem(slot) || ""; } catch (e) { return ""; } };
  const needed = document.body.dataset.needsKey === "true";
  const status = document.getElementById("key-status");
  const say = (text) => { if (status) status.textContent = text; };
  const form = document.getElementById("key-form");
  if (form) {
    say(read() ? "A key is set for this tab." : "No key set.");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("api-key");
      try { sessionStorage.setItem(slot, input.value.trim()); } catch (e) { /* storage off: the key lives until reload */ }
      input.value = "";
      say("Key set for this tab.");
      listeners.forEach((f) => f());
    });
    document.getElementById("forget-key").addEventListener("click", () => {
      try { sessionStorage.removeItem(slot); } catch (e) { /* nothing stored */ }
      say("Key forgotten.");
      listeners.forEach((f) => f());
    });
  }
  return {
    needed,
    value: read,
    forget: () => { try { sessionStorage.removeItem(slot); } catch (e) { /* nothing stored */ } say("The key was refused."); },
    headers: (extra) => { const key = read(); return Object.assign({}, extra || {}, key ? { Authorization: "Bearer " + key } : {}); },
    onChange: (f) => listeners.push(f),
  };
})();
