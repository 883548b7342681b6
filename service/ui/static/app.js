// sigreward web page: significance of a response, and a run's history.
// Plain script, no build step. Talks to the same server's /v1 API; sends the API key from
// sessionStorage (this tab only) as a bearer token once a call has answered 401.
(function () {
  "use strict";

  const KEY_STORAGE = "sigreward.apiKey";
  const POLL_SECONDS = 3;
  const DEFAULT_PARAMS = { lambda_c: 5, lambda_w_n: 2, lambda_w_e: 5, significance_threshold: 0.5 };

  const $ = (id) => document.getElementById(id);

  const state = {
    info: null,
    modes: [],
    runs: [],
    runId: null,          // run shown in the run view
    runData: null,
    sigRun: null,         // run whose configuration prices the significance view
    lastDetails: null,    // {response, reference} UnitDetail objects of the last scoring
    pollTimer: null,
    pending: null,        // action to retry once a key is entered
    modeChosen: false,    // the user or a chosen run picked the significance mode
  };

  // Exposed for tests and for debugging in the console.
  const exposed = { charts: {}, significance: null, reward: null, state: state };
  window.sigreward = exposed;

  class AuthError extends Error {}

  // ---------------------------------------------------------------- HTTP

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = apiKey();
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method: method, headers: headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let parsed = null;
    const text = await resp.text();
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (_) {
        parsed = text;
      }
    }
    if (resp.status === 401) {
      showKeyBar(key ? "the key was not accepted" : "");
      throw new AuthError("API key required");
    }
    if (!resp.ok) {
      const err = parsed && parsed.error ? parsed.error : null;
      const msg = err
        ? err.message + (err.param ? " (" + err.param + ")" : "")
        : "HTTP " + resp.status;
      throw new Error(method + " " + path + ": " + msg);
    }
    return parsed;
  }

  // Runs an async action; a 401 parks it until a key is entered, other errors are shown.
  async function guarded(action) {
    try {
      await action();
      clearError();
      return true;
    } catch (err) {
      if (err instanceof AuthError) {
        state.pending = action;
      } else {
        showError(err.message || String(err));
      }
      return false;
    }
  }

  function showError(message) {
    $("error").textContent = message;
  }

  function clearError() {
    $("error").textContent = "";
  }

  function showKeyBar(reason) {
    $("key-bar").hidden = false;
    $("key-error").textContent = reason || "";
    $("api-key").focus();
  }

  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-bar").hidden = true;
    $("key-error").textContent = "";
    const retry = state.pending;
    state.pending = null;
    // Everything that needs the API reloads with the key (info, run lists, the open view).
    await boot();
    if (retry && retry !== bootAction) await guarded(retry);
  });

  // ---------------------------------------------------------------- formatting

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return String(x);
    return x.toFixed(digits === undefined ? 4 : digits);
  }

  // ---------------------------------------------------------------- views

  function showView(name) {
    for (const v of ["significance", "run"]) {
      $("view-" + v).hidden = v !== name;
      $("tab-" + v).classList.toggle("active", v === name);
    }
    if (name === "run") {
      startPolling();
      guarded(loadRun);
    } else {
      stopPolling();
    }
  }

  function routeFromHash() {
    const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    if (hash.startsWith("run=")) {
      state.runId = hash.slice(4) || null;
      return "run";
    }
    if (hash === "run") return "run";
    return "significance";
  }

  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      const view = tab.dataset.view;
      location.hash = view === "run" && state.runId ? "run=" + state.runId : view;
    });
  }
  window.addEventListener("hashchange", () => showView(routeFromHash()));

  // ---------------------------------------------------------------- info and runs

  async function loadInfo() {
    const info = await api("GET", "/v1/info");
    state.info = info;
    const modes = info.significance_modes || info.modes || ["values"];
    state.modes = modes;
    for (const mode of ["classifier", "values"]) {
      const input = $("mode-" + mode);
      input.disabled = modes.indexOf(mode) < 0;
      input.parentElement.title = input.disabled ? "not available on this server" : "";
    }
    // The server's richest mode by default, unless the user (or a run) already chose one.
    const checked = document.querySelector('input[name="mode"]:checked');
    if (!state.modeChosen || !checked || checked.disabled) {
      setMode(modes.indexOf("classifier") >= 0 ? "classifier" : "values");
    }
    const parts = ["v" + (info.version || "?")];
    if (info.model) parts.push("model " + info.model);
    if (info.device) parts.push(info.device);
    if (info.kernel_backend) parts.push("kernels: " + info.kernel_backend);
    $("server-info").textContent = parts.join(" · ");
  }

  async function loadRuns() {
    const body = await api("GET", "/v1/runs");
    const runs = (body && body.runs) || [];
    state.runs = runs.map((r) => (typeof r === "string" ? r : r.run_id));
    fillRunSelect($("run-select"), state.runs, state.runId, false);
    fillRunSelect($("sig-run"), state.runs, state.sigRun ? state.sigRun.run_id : "", true);
    if (!state.runId && state.runs.length) state.runId = state.runs[0];
    $("run-empty").hidden = state.runs.length > 0;
  }

  function fillRunSelect(select, runs, selected, withNone) {
    const previous = selected !== undefined ? selected : select.value;
    select.textContent = "";
    if (withNone) select.appendChild(new Option("(defaults, no run)", ""));
    for (const id of runs) select.appendChild(new Option(id, id));
    if (previous && runs.indexOf(previous) < 0) select.appendChild(new Option(previous, previous));
    select.value = previous || (withNone ? "" : runs[0] || "");
  }

  // ---------------------------------------------------------------- significance view

  function setMode(mode) {
    const input = $("mode-" + mode);
    if (input) input.checked = true;
    document.body.classList.toggle("mode-values", mode === "values");
    document.body.classList.toggle("mode-classifier", mode === "classifier");
    const values = mode === "values";
    $("sig-response-label").textContent = values
      ? "Response significance values (JSON array, one number per unit)"
      : "Response";
    $("sig-reference-label").textContent = values
      ? "Reference values (JSON array, optional)"
      : "Reference (optional)";
    $("sig-response").placeholder = values ? "[0.3, 2.1, 0.7, 1.5]" : "The response text to inspect";
    $("sig-reference").placeholder = values ? "[0.4, 1.2, 0.1]" : "A reference response to the same prompt";
  }

  function currentMode() {
    const checked = document.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "values";
  }

  for (const input of document.querySelectorAll('input[name="mode"]')) {
    input.addEventListener("change", () => {
      state.modeChosen = true;
      setMode(input.value);
    });
  }

  function parseValues(text, field) {
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (_) {
      throw new Error(field + ": not valid JSON (expected an array of numbers)");
    }
    if (!Array.isArray(parsed) || parsed.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
      throw new Error(field + ": expected a JSON array of finite numbers");
    }
    return parsed;
  }

  // /v1/significance answers one entry per input; accept the list under its usual names.
  function detailsOf(body) {
    if (Array.isArray(body)) return body;
    for (const name of ["results", "responses", "items", "significance"]) {
      if (body && Array.isArray(body[name])) return body[name];
    }
    throw new Error("unexpected /v1/significance answer");
  }

  async function scoreSignificance() {
    const mode = currentMode();
    const responseText = $("sig-response").value;
    const referenceText = $("sig-reference").value.trim();
    const threshold = parseFloat($("sig-threshold").value);
    const body = {};
    if (Number.isFinite(threshold)) body.significance_threshold = threshold;
    if (mode === "values") {
      body.values = [parseValues(responseText, "response")];
      if (referenceText) body.values.push(parseValues(referenceText, "reference"));
    } else {
      body.texts = [responseText];
      if (referenceText) body.texts.push(referenceText);
    }
    const details = detailsOf(await api("POST", "/v1/significance", body));
    const response = details[0];
    const reference = referenceText ? details[1] : null;
    state.lastDetails = { response: response, reference: reference, threshold: threshold };
    exposed.significance = { mode: mode, threshold: threshold, response: response, reference: reference };

    const labels = mode === "values" ? $("sig-labels").value.trim().split(/\s+/).filter(Boolean) : [];
    const useLabels = labels.length === response.values.length;
    $("sig-labels-note").textContent = labels.length && !useLabels
      ? labels.length + " labels for " + response.values.length + " values: showing unit indices"
      : "";
    renderUnits($("sig-units"), response, threshold, useLabels ? labels : null);
    $("sig-ref-block").hidden = !reference;
    if (reference) {
      renderUnits($("sig-ref-units"), reference, threshold, null);
      $("sig-sref").value = reference.significant;
      $("sig-iref").value = reference.insignificant;
    }
    $("sig-result").hidden = false;
    updateReward();
  }

  function unitLabel(detail, i, labels) {
    if (labels) return labels[i];
    const u = detail.units ? detail.units[i] : null;
    if (u === null || u === undefined || u === "") return "#" + i;
    return String(u);
  }

  function renderUnits(container, detail, threshold, labels) {
    container.textContent = "";
    const values = detail.values || [];
    values.forEach((value, i) => {
      const span = document.createElement("span");
      span.className = "unit";
      // The class follows the server's own rule (strict: value < threshold is insignificant).
      if (value < threshold) span.classList.add("insignificant");
      span.dataset.index = String(i);
      span.dataset.value = String(value);
      span.style.setProperty("--alpha", String(value));
      span.title = "normalised significance " + value.toFixed(4);
      span.textContent = unitLabel(detail, i, labels);
      container.appendChild(span);
      container.appendChild(document.createTextNode(" "));
    });
    container.dataset.units = String(values.length);
    container.dataset.significant = String(detail.significant);
    container.dataset.insignificant = String(detail.insignificant);
  }

  function rewardParams() {
    const run = state.sigRun;
    const config = run ? run.config : DEFAULT_PARAMS;
    const k = run ? run.schedule.k : DEFAULT_PARAMS.lambda_w_e / (Math.PI / 2);
    return {
      lambda_c: config.lambda_c,
      lambda_w_n: config.lambda_w_n,
      lambda_w_e: config.lambda_w_e,
      k: k,
    };
  }

  function updateReward() {
    const details = state.lastDetails;
    const params = rewardParams();
    $("rw-run").textContent = state.sigRun ? state.sigRun.run_id : "defaults (no run)";
    $("rw-lambdas").textContent = [params.lambda_c, params.lambda_w_n, params.lambda_w_e].map((x) => fmt(x)).join(", ");
    $("rw-k").textContent = fmt(params.k);
    const note = [];
    if (state.sigRun && state.sigRun.config.reward && state.sigRun.config.reward !== "significance") {
      note.push("This run uses the baseline reward '" + state.sigRun.config.reward +
        "'; the significance reward is shown with the run's lambdas for comparison.");
    }
    if (!details) return;
    const counts = { significant: details.response.significant, insignificant: details.response.insignificant };
    const sref = parseFloat($("sig-sref").value);
    const iref = parseFloat($("sig-iref").value);
    const reference = {
      significant: Number.isFinite(sref) ? sref : 0,
      insignificant: Number.isFinite(iref) ? iref : 0,
    };
    const r = window.SigReward.ratios(counts, reference);
    const correct = window.SigReward.lengthReward(true, counts, reference, params.k, params);
    const wrong = window.SigReward.lengthReward(false, counts, reference, params.k, params);
    $("count-s").textContent = fmt(counts.significant);
    $("count-i").textContent = fmt(counts.insignificant);
    $("count-ref").textContent = fmt(reference.significant) + " / " + fmt(reference.insignificant);
    $("ratio-s").textContent = fmt(r.rS);
    $("ratio-i").textContent = fmt(r.rI);
    $("rw-correct").textContent = fmt(correct);
    $("rw-wrong").textContent = fmt(wrong);
    if (r.degenerate) {
      note.push("The reference lacks significant or insignificant units: both ratios are 0 (docs/method.md#reward).");
    }
    $("rw-note").textContent = note.join(" ");
    exposed.reward = {
      params: params,
      counts: counts,
      reference: reference,
      r_S: r.rS,
      r_I: r.rI,
      correct: correct,
      wrong: wrong,
    };
  }

  $("sig-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(scoreSignificance);
  });
  $("sig-sref").addEventListener("input", updateReward);
  $("sig-iref").addEventListener("input", updateReward);

  $("sig-run").addEventListener("change", () => guarded(selectSigRun));

  async function selectSigRun() {
    const id = $("sig-run").value;
    if (!id) {
      state.sigRun = null;
      $("sig-threshold").value = DEFAULT_PARAMS.significance_threshold;
    } else {
      state.sigRun = await api("GET", "/v1/runs/" + encodeURIComponent(id));
      $("sig-threshold").value = state.sigRun.config.significance_threshold;
      if (state.modes.indexOf(state.sigRun.config.significance) >= 0) {
        state.modeChosen = true;
        setMode(state.sigRun.config.significance);
      }
    }
    updateReward();
  }

  // ---------------------------------------------------------------- run view

  const CHARTS = [
    {
      name: "score",
      series: [{ key: "score", label: "score", stroke: "#0b6bcb" }],
    },
    {
      name: "units",
      series: [
        { key: "mean_significant", label: "mean significant", stroke: "#d97706" },
        { key: "mean_insignificant", label: "mean insignificant", stroke: "#6a737d" },
      ],
    },
    {
      name: "k",
      series: [{ key: "k_after", label: "k", stroke: "#7c3aed" }],
    },
    {
      name: "length",
      series: [
        { key: "mean_length_reward_correct", label: "correct", stroke: "#15803d" },
        { key: "mean_length_reward_wrong", label: "wrong", stroke: "#b42318" },
      ],
    },
  ];

  function numberOrNull(x) {
    return typeof x === "number" && Number.isFinite(x) ? x : null;
  }

  function chartData(history, spec) {
    const steps = history.map((h) => h.step);
    return [steps].concat(spec.series.map((s) => history.map((h) => numberOrNull(h[s.key]))));
  }

  function chartWidth(el) {
    return Math.max(320, Math.floor(el.getBoundingClientRect().width) - 4);
  }

  function drawChart(spec, history) {
    const el = $("chart-" + spec.name);
    const data = chartData(history, spec);
    const entry = exposed.charts[spec.name];
    if (entry && entry.plot) {
      entry.plot.setData(data);
    } else {
      el.textContent = "";
      const opts = {
        width: chartWidth(el),
        height: 220,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, {}],
        series: [{ label: "step" }].concat(
          spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: false, points: { show: true, size: 4 } }))
        ),
      };
      exposed.charts[spec.name] = { plot: new uPlot(opts, data, el) };
    }
    const chart = exposed.charts[spec.name];
    chart.points = data[0].length;
    chart.data = data;
    chart.series = spec.series.map((s) => s.key);
    el.dataset.points = String(data[0].length);
    el.dataset.series = spec.series.map((s) => s.key).join(",");
  }

  function destroyCharts() {
    for (const name of Object.keys(exposed.charts)) {
      const entry = exposed.charts[name];
      if (entry.plot) entry.plot.destroy();
      delete exposed.charts[name];
    }
  }

  function renderConfig(config) {
    const tbody = $("run-config").querySelector("tbody");
    tbody.textContent = "";
    for (const name of Object.keys(config).sort()) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = name;
      const td = document.createElement("td");
      const v = config[name];
      td.textContent = v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v);
      td.dataset.field = name;
      tr.appendChild(th);
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  async function loadRun() {
    await loadRuns();
    const id = $("run-select").value || state.runId;
    if (!id) {
      $("run-body").hidden = true;
      return;
    }
    const run = await api("GET", "/v1/runs/" + encodeURIComponent(id));
    if (state.runData && state.runData.run_id !== run.run_id) destroyCharts();
    state.runId = run.run_id;
    state.runData = run;
    const sched = run.schedule;
    const history = sched.history || [];
    $("run-body").hidden = false;
    $("state-k").textContent = fmt(sched.k);
    $("state-dynamic").textContent = String(sched.dynamic);
    $("state-kwarn").textContent = sched.k_warning === undefined ? "–" : String(sched.k_warning);
    $("state-low").textContent = fmt(sched.low_slope_count);
    $("state-last").textContent = fmt(sched.last_finished_step);
    $("state-steps").textContent = String(history.length);
    renderConfig(run.config);
    for (const spec of CHARTS) drawChart(spec, history);
    $("run-updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.runLoaded = run.run_id;
  }

  $("run-select").addEventListener("change", () => {
    state.runId = $("run-select").value;
    location.hash = "run=" + state.runId;
  });
  $("run-refresh").addEventListener("click", () => guarded(loadRun));
  $("run-interval").textContent = String(POLL_SECONDS);

  function startPolling() {
    stopPolling();
    state.pollTimer = setInterval(() => {
      if ($("run-live").checked && !$("view-run").hidden && $("key-bar").hidden) guarded(loadRun);
    }, POLL_SECONDS * 1000);
  }

  function stopPolling() {
    if (state.pollTimer) clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  window.addEventListener("resize", () => {
    for (const spec of CHARTS) {
      const entry = exposed.charts[spec.name];
      if (entry && entry.plot) entry.plot.setSize({ width: chartWidth($("chart-" + spec.name)), height: 220 });
    }
  });

  // ---------------------------------------------------------------- start

  async function bootAction() {
    await loadInfo();
    await loadRuns();
  }

  async function boot() {
    const ok = await guarded(bootAction);
    if (!ok) return;
    showView(routeFromHash());
    document.body.dataset.ready = "true";
  }

  setMode("values");
  const initialView = routeFromHash();
  $("tab-" + initialView).classList.add("active");
  boot();
})();
