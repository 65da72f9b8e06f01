// The page of cnnkit serve. Every number shown comes from the JSON API (cnnkit's Python code);
// this script only reads the controls, sends requests and draws the answers.
"use strict";

const $ = (id) => document.getElementById(id);
let OPTIONS = null;
let upload = null;  // {id, shape} of the last uploaded playground image

// --- talking to the server ---------------------------------------------------------------------
async function api(path, body, raw) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": raw ? "application/octet-stream" : "application/json"},
    body: raw ? body : JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function showError(id, error) {
  const box = $(id);
  box.hidden = !error;
  box.textContent = error ? error.message : "";
  // What is still drawn belongs to the last settings that worked: shown faded.
  box.parentElement.classList.toggle("stale", Boolean(error));
}

// Run `task` after `delay` ms of quiet; a newer call replaces an older one, and an answer that
// arrives after a newer request was sent is dropped.
function debounced(task, delay = 120) {
  let timer = null, generation = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++generation;
      await task(() => mine === generation);
    }, delay);
  };
}

// --- small drawing helpers -------------------------------------------------------------------
function fillSelect(select, values, chosen) {
  select.replaceChildren(...values.map((v) => new Option(v, v, false, v === chosen)));
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = src;
  });
}

// Draw a PNG on a canvas scaled up by whole pixels; returns the scale. With `pads`, the padded
// area is drawn grey around the image.
async function drawScaled(canvas, src, shape, pads) {
  const [top, bottom, left, right] = pads ? [pads[0][0], pads[0][1], pads[1][0], pads[1][1]] : [0, 0, 0, 0];
  const rows = shape[0] + top + bottom, columns = shape[1] + left + right;
  const scale = Math.max(1, Math.floor(320 / Math.max(rows, columns)));
  canvas.width = columns * scale;
  canvas.height = rows * scale;
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.fillStyle = "#d0d0d0";
  context.fillRect(0, 0, canvas.width, canvas.height);
  const image = await loadImage(src);
  context.drawImage(image, left * scale, top * scale, shape[1] * scale, shape[0] * scale);
  canvas.dataset.scale = scale;
  return scale;
}

function box(canvas, row, column, rows, columns, colour = "#e8312f") {
  const scale = Number(canvas.dataset.scale);
  const context = canvas.getContext("2d");
  context.strokeStyle = colour;
  context.lineWidth = 2;
  context.strokeRect(column * scale + 1, row * scale + 1, columns * scale - 2, rows * scale - 2);
}

function table(element, rows, className) {
  element.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    row.forEach((value) => {
      const td = document.createElement("td");
      td.textContent = value === null ? "pad" : formatNumber(value);
      if (value === null && className) td.className = className;
      tr.append(td);
    });
    return tr;
  }));
}

function formatNumber(value) {
  return Number.isInteger(value) ? String(value) : Number(value.toPrecision(6)).toString();
}

function clickedPixel(canvas, event) {
  const scale = Number(canvas.dataset.scale);
  const bounds = canvas.getBoundingClientRect();
  const x = (event.clientX - bounds.left) * canvas.width / bounds.width;
  const y = (event.clientY - bounds.top) * canvas.height / bounds.height;
  return [Math.floor(y / scale), Math.floor(x / scale)];
}

function numberOf(id) { return Number($(id).value); }

// Arrow keys on a focused output canvas move the chosen pixel (the keyboard's way to click).
function pixelKeys(canvas, shape, pixel, choose) {
  const moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
  canvas.addEventListener("keydown", (event) => {
    const move = moves[event.key];
    const size = shape();
    if (!move || !size) return;
    event.preventDefault();
    const [row, column] = pixel() || [0, 0];
    choose([Math.min(Math.max(row + move[0], 0), size[0] - 1),
            Math.min(Math.max(column + move[1], 0), size[1] - 1)]);
  });
}

// --- tabs ------------------------------------------------------------------------------------
function setupTabs() {
  document.querySelectorAll("header nav button").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("header nav button").forEach((b) =>
        b.setAttribute("aria-selected", String(b === button)));
      document.querySelectorAll(".view").forEach((view) => {
        view.hidden = view.id !== `view-${button.dataset.view}`;
      });
      if (button.dataset.view === "report") showReport();
    });
  });
  document.querySelectorAll(".subtabs button").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll(".subtabs button").forEach((b) =>
        b.setAttribute("aria-selected", String(b === button)));
      document.querySelectorAll(".sub").forEach((sub) => {
        sub.hidden = sub.id !== `sub-${button.dataset.sub}`;
      });
      refreshAll();
    });
  });
}

// --- the image of the playground -------------------------------------------------------------
function imageSpec() {
  if ($("image-sample").value === "upload" && upload) return {upload: upload.id};
  return {sample: $("image-sample").value, size: numberOf("image-size")};
}

function setupImage() {
  fillSelect($("image-sample"), OPTIONS.samples, "grid");
  $("image-sample").addEventListener("change", refreshAll);
  $("image-size").addEventListener("input", refreshAll);
  $("image-upload").addEventListener("change", async () => {
    const file = $("image-upload").files[0];
    if (!file) return;
    try {
      upload = await api("/api/upload", file, true);
      if (![...$("image-sample").options].some((o) => o.value === "upload")) {
        $("image-sample").append(new Option("uploaded image", "upload"));
      }
      $("image-sample").value = "upload";
      $("image-note").textContent = [`uploaded: ${upload.shape[1]}×${upload.shape[0]}`, ...upload.notes].join("; ");
      showError("conv-error", null);
      refreshAll();
    } catch (error) {
      showError("conv-error", error);
    }
  });
}

// --- 2-D convolution -------------------------------------------------------------------------
let kernelWeights = null;  // the custom grid's numbers, or null for a named kernel
let selectedPixel = null;
let lastConvolution = null;

function convRequest() {
  const padding = $("conv-padding").value === "number" ? numberOf("conv-padding-number") : $("conv-padding").value;
  const name = $("conv-kernel").value;
  let kernel;
  if (name === "custom") {
    kernel = {weights: kernelWeights};
  } else {
    const params = {};
    document.querySelectorAll("#conv-params input").forEach((input) => {
      if (input.value !== "") params[input.name] = Number(input.value);
    });
    kernel = {name, params};
  }
  return {image: imageSpec(), kernel, operation: $("conv-operation").value, padding,
          padding_mode: $("conv-padding-mode").value, stride: numberOf("conv-stride"),
          dilation: numberOf("conv-dilation")};
}

function showKernelParams() {
  const name = $("conv-kernel").value;
  const params = name === "custom" ? [] : OPTIONS.kernels[name];
  $("conv-params").replaceChildren(...params.map((param) => {
    const label = document.createElement("label");
    label.textContent = `${param} `;
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.name = param;
    input.addEventListener("input", updateConvolution);
    label.append(input);
    return label;
  }));
}

function drawGrid(weights) {
  $("grid-rows").value = weights.length;
  $("grid-columns").value = weights[0].length;
  $("kernel-grid").replaceChildren(...weights.map((row, r) => {
    const tr = document.createElement("tr");
    row.forEach((value, c) => {
      const td = document.createElement("td");
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.value = formatNumber(value);
      input.setAttribute("aria-label", `weight row ${r} column ${c}`);
      input.addEventListener("input", () => {
        kernelWeights = readGrid();
        $("conv-kernel").value = "custom";
        showKernelParams();
        updateConvolution();
      });
      td.append(input);
      tr.append(td);
    });
    return tr;
  }));
}

function readGrid() {
  return [...$("kernel-grid").rows].map((tr) =>
    [...tr.querySelectorAll("input")].map((input) => Number(input.value)));
}

function resizeGrid() {
  const rows = numberOf("grid-rows"), columns = numberOf("grid-columns");
  const old = readGrid();
  const limit = OPTIONS.limits.kernel_side;
  if (!(rows >= 1 && columns >= 1 && rows <= limit && columns <= limit)) {
    showError("conv-error", new Error(`the kernel grid may have 1 to ${limit} rows and columns`));
    return;
  }
  kernelWeights = Array.from({length: rows}, (_, r) =>
    Array.from({length: columns}, (_, c) => (old[r] && old[r][c] !== undefined ? old[r][c] : 0)));
  $("conv-kernel").value = "custom";
  showKernelParams();
  drawGrid(kernelWeights);
  updateConvolution();
}

async function renderConvolution(result) {
  lastConvolution = result;
  $("conv-input-shape").textContent = result.input.shape.join(" × ");
  $("conv-padded-shape").textContent = result.padded.shape.join(" × ");
  $("conv-shape").textContent = result.output.shape.join(" × ");
  $("conv-range").textContent = `${formatNumber(result.output.min)} to ${formatNumber(result.output.max)}`;
  $("conv-formula-rows").textContent = result.formula[0];
  $("conv-formula-columns").textContent = result.formula[1];
  if ($("conv-kernel").value !== "custom") drawGrid(result.kernel.weights);
  await drawScaled($("conv-input"), result.input.png, result.input.shape, result.padded.pads);
  await drawScaled($("conv-output"), result.output.png, result.output.shape);
  const pixel = result.pixel;
  $("conv-pixel").hidden = !pixel;
  if (!pixel) return;
  const [rows, columns] = [pixel.window.length, pixel.window[0].length];
  const dilation = Number($("conv-dilation").value);
  box($("conv-input"), pixel.start[0], pixel.start[1], (rows - 1) * dilation + 1, (columns - 1) * dilation + 1);
  box($("conv-output"), pixel.index[0], pixel.index[1], 1, 1);
  $("pixel-index").textContent = `(${pixel.index.join(", ")})`;
  $("pixel-flip").textContent = result.kernel.flipped
    ? "Convolution: the kernel is flipped (rows and columns reversed) before it slides."
    : "Correlation: the kernel slides as it is.";
  table($("pixel-window"), pixel.window);
  table($("pixel-kernel"), pixel.kernel);
  table($("pixel-products"), pixel.products);
  $("pixel-expression").textContent = pixel.expression;
  $("pixel-sum").textContent = formatNumber(pixel.sum);
  $("pixel-value").textContent = formatNumber(pixel.value);
}

const updateConvolution = debounced(async (current) => {
  const request = convRequest();
  try {
    let result = await api("/api/convolution", request);
    if (selectedPixel) {
      // Keep the chosen element inside the new output, then ask for its sum.
      selectedPixel = selectedPixel.map((v, axis) => Math.min(v, result.output.shape[axis] - 1));
      result = await api("/api/convolution", {...request, pixel: selectedPixel});
    }
    if (!current()) return;
    showError("conv-error", null);
    await renderConvolution(result);
  } catch (error) {
    if (current()) showError("conv-error", error);
  }
});

function setupConvolution() {
  fillSelect($("conv-kernel"), [...Object.keys(OPTIONS.kernels), "custom"], "sobel-x");
  fillSelect($("conv-operation"), OPTIONS.operations, "correlate");
  fillSelect($("conv-padding"), [...OPTIONS.paddings, "number"], "same");
  fillSelect($("conv-padding-mode"), OPTIONS.padding_modes, "zeros");
  $("conv-kernel").addEventListener("change", () => {
    if ($("conv-kernel").value === "custom") kernelWeights = readGrid();
    showKernelParams();
    updateConvolution();
  });
  $("conv-padding").addEventListener("change", () => {
    $("conv-padding-number-label").hidden = $("conv-padding").value !== "number";
    updateConvolution();
  });
  ["conv-operation", "conv-padding-mode"].forEach((id) => $(id).addEventListener("change", updateConvolution));
  ["conv-padding-number", "conv-stride", "conv-dilation"].forEach((id) => $(id).addEventListener("input", updateConvolution));
  ["grid-rows", "grid-columns"].forEach((id) => $(id).addEventListener("change", resizeGrid));
  $("conv-output").addEventListener("click", (event) => {
    if (!lastConvolution) return;
    const [row, column] = clickedPixel($("conv-output"), event);
    const [rows, columns] = lastConvolution.output.shape;
    if (row < 0 || column < 0 || row >= rows || column >= columns) return;
    selectedPixel = [row, column];
    updateConvolution();
  });
  pixelKeys($("conv-output"), () => lastConvolution && lastConvolution.output.shape,
            () => selectedPixel, (pixel) => { selectedPixel = pixel; updateConvolution(); });
  showKernelParams();
}

// --- 1-D -------------------------------------------------------------------------------------
function parseList(text) {
  return text.split(/[\s,;]+/).filter((part) => part !== "").map(Number);
}

function cells(values, className, padBefore, padAfter) {
  const line = document.createElement("div");
  line.className = `cells ${className}`;
  values.forEach((value, index) => {
    const cell = document.createElement("span");
    cell.textContent = formatNumber(value);
    if (index < padBefore || index >= values.length - padAfter) cell.classList.add("pad");
    line.append(cell);
  });
  return line;
}

function renderSignal(result) {
  const container = $("signal-modes");
  container.replaceChildren(...result.modes.map((mode) => {
    const section = document.createElement("div");
    section.className = "signal-mode";
    section.dataset.padding = mode.padding;
    const title = document.createElement("h3");
    title.textContent = `padding ${JSON.stringify(mode.padding)}: ${mode.pads[0]} before, ${mode.pads[1]} after; o = ${mode.formula}`;
    const padded = cells(mode.padded, "padded", mode.pads[0], mode.pads[1]);
    const outputs = document.createElement("div");
    outputs.className = "cells outputs";
    const explanation = document.createElement("p");
    explanation.className = "expression";
    mode.elements.forEach((element, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = formatNumber(mode.output[index]);
      button.addEventListener("click", () => {
        outputs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b === button));
        const dilation = numberOf("signal-dilation");
        padded.querySelectorAll("span").forEach((span, position) => {
          const offset = position - element.start[0];
          span.classList.toggle("hit", offset >= 0 && offset % dilation === 0 && offset / dilation < element.kernel.length);
        });
        explanation.textContent = `y[${index}] = ${element.expression} = ${formatNumber(element.sum)}`;
      });
      outputs.append(button);
    });
    const label1 = document.createElement("p");
    label1.textContent = "padded x (grey: padding)";
    const label2 = document.createElement("p");
    label2.textContent = "output (click an element)";
    section.append(title, label1, padded, label2, outputs, explanation);
    return section;
  }));
  const note = document.createElement("p");
  note.textContent = `kernel as applied: [${result.applied.map(formatNumber).join(", ")}]` +
    (result.operation === "convolve" ? " (flipped: convolution)" : " (as given: correlation)");
  container.prepend(note);
}

// The paddings the 1-D tab asks for: the three named ones side by side, or one.
function signalPaddings() {
  const choice = $("signal-padding").value;
  if (choice === "full, same and valid") return ["full", "same", "valid"];
  return [choice === "number" ? numberOf("signal-padding-number") : choice];
}

const updateSignal = debounced(async (current) => {
  try {
    const result = await api("/api/signal1d", {
      x: parseList($("signal-x").value), kernel: parseList($("signal-kernel").value),
      operation: $("signal-operation").value, paddings: signalPaddings(),
      padding_mode: $("signal-padding-mode").value, stride: numberOf("signal-stride"),
      dilation: numberOf("signal-dilation"),
    });
    if (!current()) return;
    showError("signal-error", null);
    renderSignal(result);
  } catch (error) {
    if (current()) showError("signal-error", error);
  }
});

function setupSignal() {
  $("signal-x").value = OPTIONS.tutorial_signal.x.join(", ");
  $("signal-kernel").value = OPTIONS.tutorial_signal.kernel.join(", ");
  fillSelect($("signal-operation"), OPTIONS.operations, "convolve");
  fillSelect($("signal-padding"), ["full, same and valid", ...OPTIONS.paddings, "number"], "full, same and valid");
  fillSelect($("signal-padding-mode"), OPTIONS.padding_modes, "zeros");
  $("signal-padding").addEventListener("change", () => {
    $("signal-padding-number-label").hidden = $("signal-padding").value !== "number";
    updateSignal();
  });
  ["signal-operation", "signal-padding-mode"].forEach((id) => $(id).addEventListener("change", updateSignal));
  ["signal-x", "signal-kernel", "signal-padding-number", "signal-stride", "signal-dilation"].forEach((id) => $(id).addEventListener("input", updateSignal));
}

// --- several channels ------------------------------------------------------------------------
function figureOf(src, caption) {
  const figure = document.createElement("figure");
  const image = document.createElement("img");
  image.className = "px";
  image.src = src;
  image.alt = caption;
  const text = document.createElement("figcaption");
  text.textContent = caption;
  figure.append(image, text);
  return figure;
}

const updateChannels = debounced(async (current) => {
  const request = {
    channels: [...document.querySelectorAll(".channel-sample")].map((s) => s.value),
    size: numberOf("image-size"), filters: numberOf("channels-filters"),
    kernel_size: numberOf("channels-kernel-size"), seed: numberOf("channels-seed"),
    padding: numberOf("channels-padding"), stride: numberOf("channels-stride"),
  };
  if ($("channels-use-upload").checked && upload) request.image = {upload: upload.id};
  try {
    const result = await api("/api/multichannel", request);
    if (!current()) return;
    showError("channels-error", null);
    const names = ["red", "green", "blue"];
    $("channels-shapes").textContent = `Input ${result.input_shape.join(" × ")} → output ${result.output_shape.join(" × ")}.`;
    $("channels-formula").textContent = `o = ${result.formula[0]} (rows), ${result.formula[1]} (columns)`;
    $("channels-input").replaceChildren(...result.channels.map((src, c) => figureOf(src, `channel ${c} (${names[c]})`)));
    $("channels-filters-view").replaceChildren(...result.filters.map((filter, f) => {
      const block = document.createElement("div");
      block.className = "filter";
      const title = document.createElement("h3");
      title.textContent = `filter ${f}: bias ${formatNumber(filter.bias)}`;
      const row = document.createElement("div");
      row.className = "row";
      filter.parts.forEach((src, c) => {
        const figure = figureOf(src, `channel ${c} ⋆ kernel ${f},${c}`);
        const weights = document.createElement("table");
        weights.className = "grid";
        table(weights, filter.weights[c]);
        figure.append(weights);
        row.append(figure);
      });
      row.append(figureOf(filter.sum, "sum over the 3 channels"),
                 figureOf(filter.output, `sum + bias ${formatNumber(filter.bias)} = output ${f} (conv2d; differs by ${filter.difference.toExponential(1)})`));
      block.append(title, row);
      return block;
    }));
  } catch (error) {
    if (current()) showError("channels-error", error);
  }
});

function setupChannels() {
  const defaults = ["grid", "circles", "gradient"];
  document.querySelectorAll(".channel-sample").forEach((select, c) => {
    fillSelect(select, OPTIONS.samples, defaults[c]);
    select.addEventListener("change", updateChannels);
  });
  ["channels-filters", "channels-kernel-size", "channels-seed", "channels-padding", "channels-stride"].forEach((id) =>
    $(id).addEventListener("input", updateChannels));
  $("channels-use-upload").addEventListener("change", updateChannels);
}

// --- pooling ---------------------------------------------------------------------------------
let poolPixel = null;
let lastPool = null;

function poolRequest() {
  return {image: imageSpec(), kind: $("pool-kind").value, kernel_size: numberOf("pool-kernel"),
          stride: $("pool-stride").value === "" ? null : numberOf("pool-stride"),
          padding: numberOf("pool-padding"), ceil_mode: $("pool-ceil").checked,
          count_include_pad: $("pool-include-pad").checked};
}

const updatePool = debounced(async (current) => {
  const request = poolRequest();
  try {
    let result = await api("/api/pooling", request);
    if (poolPixel) {
      poolPixel = poolPixel.map((v, axis) => Math.min(v, result.output.shape[axis] - 1));
      result = await api("/api/pooling", {...request, pixel: poolPixel});
    }
    if (!current()) return;
    showError("pool-error", null);
    lastPool = result;
    $("pool-input-shape").textContent = result.input.shape.join(" × ");
    $("pool-shape").textContent = result.output.shape.join(" × ");
    $("pool-formula-rows").textContent = result.formula[0];
    $("pool-formula-columns").textContent = result.formula[1];
    const padding = numberOf("pool-padding");
    const pads = [[padding, padding], [padding, padding]];
    await drawScaled($("pool-input"), result.input.png, result.input.shape, pads);
    await drawScaled($("pool-output"), result.output.png, result.output.shape);
    const pixel = result.pixel;
    $("pool-pixel").hidden = !pixel;
    if (!pixel) return;
    box($("pool-input"), pixel.start[0], pixel.start[1], pixel.window.length, pixel.window[0].length);
    box($("pool-output"), pixel.index[0], pixel.index[1], 1, 1);
    $("pool-pixel-index").textContent = `(${pixel.index.join(", ")})`;
    table($("pool-window"), pixel.window, "pad");
    if (result.kind === "max") {
      const [row, column] = [pixel.chosen[0] + pixel.origin[0] - pixel.start[0], pixel.chosen[1] + pixel.origin[1] - pixel.start[1]];
      const cell = $("pool-window").rows[row] && $("pool-window").rows[row].cells[column];
      if (cell) cell.classList.add("chosen");
      $("pool-explanation").textContent = `maximum = ${formatNumber(pixel.value)} at input (${pixel.chosen.join(", ")}); padding counts as −∞`;
    } else {
      $("pool-explanation").textContent = `sum ${formatNumber(pixel.sum)} / ${formatNumber(pixel.divisor)} = ${formatNumber(pixel.value)}`;
    }
  } catch (error) {
    if (current()) showError("pool-error", error);
  }
});

function setupPool() {
  fillSelect($("pool-kind"), OPTIONS.pools, "max");
  ["pool-kind", "pool-ceil", "pool-include-pad"].forEach((id) => $(id).addEventListener("change", updatePool));
  ["pool-kernel", "pool-stride", "pool-padding"].forEach((id) => $(id).addEventListener("input", updatePool));
  $("pool-output").addEventListener("click", (event) => {
    if (!lastPool) return;
    const [row, column] = clickedPixel($("pool-output"), event);
    if (row < 0 || column < 0 || row >= lastPool.output.shape[0] || column >= lastPool.output.shape[1]) return;
    poolPixel = [row, column];
    updatePool();
  });
  pixelKeys($("pool-output"), () => lastPool && lastPool.output.shape, () => poolPixel,
            (pixel) => { poolPixel = pixel; updatePool(); });
}

function refreshAll() {
  const sub = document.querySelector(".subtabs button[aria-selected=true]").dataset.sub;
  ({conv: updateConvolution, signal: updateSignal, channels: updateChannels, pool: updatePool})[sub]();
}

// --- inside the network ----------------------------------------------------------------------
// One request at a time: while one is out, later changes mark the input dirty, and one more
// request goes when the answer arrives. The input is the uploaded file until drawing starts.
let drawing = false, dirty = false, inFlight = false, uploadedFile = null;
let lastBody = null;  // the image the shown maps belong to
let openMap = null;  // {layer, channel, pixel} of the map shown in detail
let openedFrom = {};  // the tile that opened it: focus returns there on closing

function canvasBlob(canvas) {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function sendDrawing() {
  if (inFlight) { dirty = true; return; }
  inFlight = true;
  dirty = false;
  try {
    const body = uploadedFile || await canvasBlob($("draw"));
    const query = new URLSearchParams({invert: $("network-invert").value,
                                       method: $("network-method").value, top: $("network-top").value,
                                       layers: $("network-every").checked ? "all" : "shown"});
    const started = performance.now();
    const result = await api(`/api/predict?${query}`, body, true);
    lastBody = body;
    renderNetwork(result, performance.now() - started);
    showError("network-error", null);
    if (openMap) await showMap(openMap.layer, openMap.channel, openMap.pixel, false);
  } catch (error) {
    showError("network-error", error);
  } finally {
    inFlight = false;
    if (dirty) sendDrawing();
  }
}

function renderNetwork(result, roundTrip) {
  $("network-seen").src = result.image.png;
  $("network-notes").replaceChildren(...result.image.notes.map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
  const n = result.normalised;
  $("network-range").textContent = `normalised input: ${formatNumber(n.min)} to ${formatNumber(n.max)}, mean ${formatNumber(n.mean)}`;
  $("network-top-list").replaceChildren(...result.top.map((entry) => {
    const item = document.createElement("li");
    item.className = "top";
    item.textContent = `${entry.class} ${(100 * entry.probability).toFixed(1)}%`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(150 * entry.probability)}px`;
    item.append(bar);
    return item;
  }));
  $("network-attribution").src = result.attribution.png;
  $("network-attribution").hidden = Boolean(result.attribution.flat);
  $("network-attribution-caption").textContent = `${result.attribution.method} for "${result.attribution.class}"` +
    (result.attribution.flat ? `: ${result.attribution.flat}` : "");
  $("network-timing").textContent = `server: model ${result.timing_ms.model} ms, whole request ${result.timing_ms.total} ms; round trip ${Math.round(roundTrip)} ms`;
  const detail = $("network-detail");
  $("network-layers").after(detail);  // out of the list before the list is redrawn
  $("network-layers").replaceChildren(...result.layers.map(layerTiles));
  if (openMap) {
    // Keep the detail under the layer it belongs to, and that map's tile marked.
    FeatureMapView.mark($("network-layers"), openMap.layer, openMap.channel);
    const tile = document.querySelector(`.fm-tile[aria-pressed=true]`);
    if (tile) tile.closest("figure").after(detail);
  }
}

// One layer's maps as tiles labelled with their filter numbers (featuremaps.js): Enter or a
// click shows the map in detail under the layer.
function layerTiles(layer) {
  const figure = document.createElement("figure");
  figure.className = "layer";
  const tiles = document.createElement("div");
  tiles.className = "fm-tiles";
  tiles.setAttribute("role", "group");
  tiles.setAttribute("aria-label", `${layer.name}: ${layer.shape[0]} maps`);
  // Small maps drawn larger, pixel by pixel.
  const zoom = Math.max(1, Math.min(4, Math.floor(84 / layer.shape[2])));
  FeatureMapView.tiles(tiles, layer, layer.maps.length, (channel) => {
    const image = new Image(layer.shape[2] * zoom, layer.shape[1] * zoom);
    image.src = layer.maps[channel];
    image.alt = "";
    return image;
  }, (channel) => {
    figure.after($("network-detail"));
    openedFrom = {layer: layer.index, channel};
    showMap(layer.index, channel, null, true);
  });
  const caption = document.createElement("figcaption");
  caption.textContent = `${layer.name} (layer ${layer.index}: ${layer.kind}): ${layer.shape[0]} maps of ${layer.shape[1]}×${layer.shape[2]}, values ${formatNumber(layer.min)} to ${formatNumber(layer.max)}, one colour scale`;
  figure.append(caption, tiles);
  return figure;
}

function featureMap(layer, channel, pixel) {
  const query = new URLSearchParams({layer, channel, invert: $("network-invert").value});
  if (pixel) {
    query.set("row", pixel[0]);
    query.set("column", pixel[1]);
  }
  return api(`/api/featuremap?${query}`, lastBody, true);
}

// One map in detail (featuremaps.js draws it); its pixel, and the map it came from, on request.
async function showMap(layer, channel, pixel, focus) {
  if (!lastBody) return;
  openMap = {layer, channel, pixel};
  FeatureMapView.mark($("network-layers"), layer, channel);
  try {
    const detail = await featureMap(layer, channel, pixel);
    if (!openMap || openMap.layer !== layer || openMap.channel !== channel) return;
    const big = FeatureMapView.render($("network-detail"), detail, {
      picture: (entry) => {
        const image = new Image();
        image.src = entry.png;
        image.alt = "";
        return image;
      },
      choose: async (chosen) => {
        openMap.pixel = chosen;
        return (await featureMap(layer, channel, chosen)).pixel;
      },
      open: (source, sourceChannel, sourcePixel) => showMap(source, sourceChannel, sourcePixel, true),
      closed: () => {
        openMap = null;
        FeatureMapView.mark($("network-layers"), null, null);
        const opener = document.querySelector(`.fm-tile[data-layer="${openedFrom.layer}"][data-channel="${openedFrom.channel}"]`);
        if (opener) opener.focus();
      },
    });
    showError("network-error", null);
    if (focus) big.focus();
  } catch (error) {
    showError("network-error", error);
  }
}

function clearCanvas() {
  const context = $("draw").getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, $("draw").width, $("draw").height);
}

function setupNetwork() {
  const run = OPTIONS.run;
  $("network-missing").hidden = Boolean(run);
  $("network-body").hidden = !run;
  if (!run) return;
  $("network-model").textContent = `Run ${run.name}: input ${run.input_shape.join("×")}, ${run.class_names.length} classes, layers ${run.layers.join(" → ")}. Draw dark on light; the model's input is made as cnnkit predict makes it.`;
  fillSelect($("network-invert"), ["auto", "always", "never"], "auto");
  fillSelect($("network-method"), run.methods, "gradcam");
  ["network-invert", "network-method", "network-every"].forEach((id) => $(id).addEventListener("change", () => sendDrawing()));
  $("network-top").addEventListener("input", () => sendDrawing());
  const canvas = $("draw");
  const context = canvas.getContext("2d");
  clearCanvas();
  const point = (event) => {
    const bounds = canvas.getBoundingClientRect();
    return [(event.clientX - bounds.left) * canvas.width / bounds.width,
            (event.clientY - bounds.top) * canvas.height / bounds.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    uploadedFile = null;
    canvas.setPointerCapture(event.pointerId);
    context.lineWidth = 20;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.strokeStyle = "#000";
    context.beginPath();
    context.moveTo(...point(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    context.lineTo(...point(event));
    context.stroke();
    sendDrawing();
  });
  const stop = () => {
    if (!drawing) return;
    drawing = false;
    sendDrawing();
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("draw-clear").addEventListener("click", () => { uploadedFile = null; clearCanvas(); sendDrawing(); });
  $("network-upload").addEventListener("change", () => {
    uploadedFile = $("network-upload").files[0] || null;
    if (uploadedFile) sendDrawing();
  });
}

// --- the report ------------------------------------------------------------------------------
function showReport() {
  const run = OPTIONS.run;
  const report = run && run.report;
  $("report-missing").hidden = Boolean(report);
  $("report-missing").textContent = !run
    ? "No run is loaded: start the server with a run folder, cnnkit serve runs/mnist"
    : "This run has no report.html yet: write it with cnnkit report " + run.name;
  $("report-link").hidden = !report;
  $("report-frame").hidden = !report;
  if (report && !$("report-frame").src) $("report-frame").src = report;
}

// --- start -----------------------------------------------------------------------------------
async function start() {
  OPTIONS = await api("/api/options");
  setupTabs();
  setupImage();
  setupConvolution();
  setupSignal();
  setupChannels();
  setupPool();
  setupNetwork();
  document.body.dataset.ready = "true";
  refreshAll();
}

start();
