// The model card's playground: sliders and fields kept in step, values outside the training range marked, and a
// prediction asked from this server's /predict, shown as a class and a bar per class probability.
"use strict";
(() => {
  const urls = JSON.parse(document.getElementById("page-urls").textContent);
  const holder = document.getElementById("card");

  const say = (element, text) => { element.textContent = text; };
  const percent = (p) => (100 * p).toFixed(1) + "%";

  function markRange(feature) {
    if (feature.dataset.kind === "category") return;
    const input = feature.querySelector('input[type="number"]');
    const range = feature.querySelector(".range");
    range.dataset.text = range.dataset.text || range.textContent;
    const value = Number(input.value);
    const outside = input.value.trim() !== "" && Number.isFinite(value) &&
      (value < Number(feature.dataset.min) || value > Number(feature.dataset.max));
    feature.classList.toggle("out-of-range", outside);
    input.setAttribute("aria-invalid", outside ? "true" : "false");
    range.textContent = outside ? "outside the training range: " + range.dataset.text : range.dataset.text;
  }

  function showError(result, message) {
    say(result.querySelector("#result-error"), message);
    result.querySelector("#result-probabilities").hidden = true;
    say(result.querySelector("#result-summary"), "No prediction.");
  }

  function showPrediction(result, form, answer) {
    const row = answer.predictions[0];
    const summary = result.querySelector("#result-summary");
    summary.replaceChildren("Class ", Object.assign(document.createElement("strong"), { id: "result-class", textContent: row.class_name }),
      ` (label ${row.class}), from model version ${answer.model_version}.`);
    if (String(answer.model_version) !== form.dataset.version) {
      summary.append(` The server now serves version ${answer.model_version}: reload the page for its card.`);
    }
    const table = result.querySelector("#result-probabilities");
    const body = table.querySelector("tbody");
    body.replaceChildren(...Object.entries(row.probabilities).map(([name, p]) => {
      const tr = document.createElement("tr");
      tr.dataset.class = name;
      tr.dataset.probability = String(p);
      const bar = Object.assign(document.createElement("div"), { className: "bar" });
      bar.style.width = percent(p);
      const cell = Object.assign(document.createElement("td"), { className: "bar-cell" });
      cell.append(bar);
      tr.append(Object.assign(document.createElement("th"), { scope: "row", textContent: name }),
        Object.assign(document.createElement("td"), { textContent: percent(p) }), cell);
      return tr;
    }));
    table.hidden = false;
    result.querySelector("#result-warnings").replaceChildren(...(row.warnings || []).map((w) =>
      Object.assign(document.createElement("li"), {
        textContent: w.unseen_category ? `${w.feature}: a category the training rows never held; it is answered as none of the known ones.`
          : `${w.feature} = ${w.value} is outside the training range ${w.min} to ${w.max}: the answer is an extrapolation.` })));
  }

  async function predict(form, result) {
    const record = {};
    form.querySelectorAll(".feature").forEach((feature) => {
      if (feature.dataset.kind === "category") {
        const choice = feature.querySelector("select").value;
        record[feature.dataset.feature] = choice === "" ? null : choice;
        return;
      }
      const text = feature.querySelector('input[type="number"]').value.trim();
      record[feature.dataset.feature] = text === "" ? null : Number(text);
    });
    say(result.querySelector("#result-error"), "");
    say(result.querySelector("#result-summary"), "Asking the model…");
    let response, answer;
    try {
      response = await fetch(form.dataset.predictUrl, { method: "POST", body: JSON.stringify({ records: [record] }),
        headers: wineKey.headers({ "Content-Type": "application/json", Accept: "application/json" }) });
      answer = await response.json();
    } catch (e) {
      return showError(result, "The server could not be reached, or did not answer in JSON.");
    }
    if (!response.ok) {
      if (response.status === 401) wineKey.forget();
      return showError(result, (answer.error && answer.error.message) || `The server answered ${response.status}.`);
    }
    showPrediction(result, form, answer);
  }

  function openReportWithKey(link) {
    link.addEventListener("click", async (event) => {
      if (!wineKey.value()) return;
      event.preventDefault();
      const response = await fetch(link.href, { headers: wineKey.headers() });
      if (!response.ok) { say(link, `${link.textContent.split(" (")[0]} (the server answered ${response.status})`); return; }
      window.location.assign(URL.createObjectURL(await response.blob()));
    });
  }

  function wire(card) {
    const form = card.querySelector("#playground");
    const result = card.querySelector("#result");
    form.querySelectorAll('.feature[data-kind="number"]').forEach((feature) => {
      const slider = feature.querySelector('input[type="range"]');
      const input = feature.querySelector('input[type="number"]');
      slider.addEventListener("input", () => { input.value = slider.value; markRange(feature); });
      input.addEventListener("input", () => { if (input.value.trim() !== "") slider.value = input.value; markRange(feature); });
      markRange(feature);
    });
    form.addEventListener("submit", (event) => { event.preventDefault(); predict(form, result); });
    form.addEventListener("reset", () => setTimeout(() => form.querySelectorAll(".feature").forEach(markRange), 0));
    card.querySelectorAll("#report-link, #exploration-link").forEach((link) => {
      if (wineKey.needed) openReportWithKey(link);
    });
  }

  async function loadCard() {
    const notice = () => holder.querySelector("#card-notice") || holder;
    if (!wineKey.value()) { holder.replaceChildren(Object.assign(document.createElement("p"), { id: "card-notice",
      className: "notice", textContent: "Give the API key above to see the model card and try the model." })); return; }
    let response;
    try { response = await fetch(urls.card, { headers: wineKey.headers({ Accept: "text/html" }) }); }
    catch (e) { say(notice(), "The server could not be reached."); return; }
    if (!response.ok) {
      if (response.status === 401) wineKey.forget();
      const answer = await response.json().catch(() => ({}));
      say(notice(), (answer.error && answer.error.message) || `The server answered ${response.status}.`);
      return;
    }
    holder.innerHTML = await response.text();  // the server's own template, every value escaped
    wire(holder.querySelector("#model-card"));
  }

  const card = holder.querySelector("#model-card");
  if (card) wire(card);
  else if (wineKey.needed) { wineKey.onChange(loadCard); loadCard(); }
})();
