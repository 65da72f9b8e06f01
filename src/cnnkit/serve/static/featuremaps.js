// One feature map in detail, drawn the same way by the page of cnnkit serve and by the run
// report (which inlines this file): the map enlarged, what made it (the filter's kernels and
// the input maps, or the map it came from and the operation) and, for a chosen pixel, its
// window written out next to the value the network computed. Every number comes in the
// `detail` object (cnnkit.featuremaps.map_detail in Python, or the report's embedded numbers);
// this script only lays them out. The host draws the maps: `host.picture(entry)` returns an
// element (an <img> or a <canvas>) for detail.map or one of detail.sources.
"use strict";

const FeatureMapView = (() => {
  const OPERATIONS = {
    relu: (s) => `max(0, ${s})`, tanh: (s) => `tanh(${s})`,
    sigmoid: (s) => `1 / (1 + exp(−(${s})))`, identity: (s) => s,
  };

  function short(value) {
    if (value === null || value === undefined) return "pad";
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }

  function long(value) {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  }

  function signed(value) {
    return value < 0 ? `(${long(value)})` : long(value);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A table of numbers; `padding` marks cells in the padding, `chosen` one cell.
  function grid(values, padding, chosen) {
    const table = element("table", "fm-grid");
    values.forEach((row, r) => {
      const tr = document.createElement("tr");
      row.forEach((value, c) => {
        const td = element("td", "", short(value));
        if (padding && padding[r][c]) td.classList.add("pad");
        if (chosen && chosen[0] === r && chosen[1] === c) td.classList.add("chosen");
        tr.append(td);
      });
      table.append(tr);
    });
    return table;
  }

  function figure(content, caption) {
    const node = element("figure", "fm-figure");
    node.append(content, element("figcaption", "", caption));
    return node;
  }

  // A kernel drawn red (positive) and blue (negative) around white, on its own scale.
  function kernelPicture(weights, cell = 8) {
    const rows = weights.length, columns = weights[0].length;
    const extent = Math.max(...weights.flat().map(Math.abs)) || 1;
    const canvas = element("canvas", "fm-kernel");
    canvas.width = columns;
    canvas.height = rows;
    canvas.style.width = `${columns * cell}px`;
    canvas.style.height = `${rows * cell}px`;
    const context = canvas.getContext("2d");
    const image = context.createImageData(columns, rows);
    weights.flat().forEach((value, i) => {
      const t = value / extent, fade = Math.round(255 * (1 - Math.abs(t)));
      image.data.set(t >= 0 ? [255, fade, fade, 255] : [fade, fade, 255, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    return canvas;
  }

  // A map scaled up to about `size` pixels, with a box for a window or a pixel.
  function scaledMap(host, entry, shape, size) {
    const frame = element("div", "fm-frame");
    const picture = host.picture(entry);
    const scale = Math.max(1, Math.floor(size / Math.max(shape[0], shape[1])));
    picture.style.width = `${shape[1] * scale}px`;
    picture.style.height = `${shape[0] * scale}px`;
    frame.append(picture);
    if (entry.flat) {
      frame.classList.add("flat");
      frame.append(element("span", "fm-flat", entry.flat));
    }
    return frame;
  }

  function placeBox(frame, shape, top, left, rows, columns) {
    let box = frame.querySelector(".fm-box");
    if (!box) {
      box = element("span", "fm-box");
      frame.append(box);
    }
    // Clipped to the map: a window may reach into the padding.
    const bottom = Math.min(top + rows, shape[0]), right = Math.min(left + columns, shape[1]);
    top = Math.max(top, 0);
    left = Math.max(left, 0);
    box.style.top = `${100 * top / shape[0]}%`;
    box.style.left = `${100 * left / shape[1]}%`;
    box.style.height = `${100 * Math.max(bottom - top, 0) / shape[0]}%`;
    box.style.width = `${100 * Math.max(right - left, 0) / shape[1]}%`;
  }

  function range(entry) {
    return entry.flat || `values ${short(entry.min)} to ${short(entry.max)}`;
  }

  function title(detail) {
    return `${detail.name} map ${detail.channel}`;
  }

  // The pixel of the source map that the chosen pixel comes from, where there is one: the
  // same position for an operation pixel by pixel, the chosen cell of a maximum.
  function sourcePixel(panel) {
    const detail = panel && panel.fmDetail, pixel = detail && detail.pixel;
    if (!pixel) return null;
    if (["relu", "tanh", "sigmoid", "identity", "batch_norm"].includes(detail.operation)) {
      return pixel.index;
    }
    if (detail.operation === "max") {
      return [0, 1].map((axis) => pixel.start[axis] - pixel.origin[axis] +
                                  pixel.chosen[axis] * detail.dilation[axis]);
    }
    return null;
  }

  // What made the map: the filter's kernels and its input maps, or the map it came from.
  function madeFrom(detail, host) {
    const part = element("div", "fm-made");
    const sourceShape = detail.source_shape;
    if (detail.operation === "convolution") {
      const k = detail.kernels;
      const size = detail.kernel_size.join("×");
      part.append(element("h4", "", k.channels.length === 1
        ? `Kernel ${detail.channel} (${size}) and bias ${long(k.bias)}`
        : `Filter ${detail.channel}: ${k.channels.length} kernels of ${size}, one per input ` +
          `channel, and bias ${long(k.bias)}`));
      const kernels = element("div", "fm-kernels");
      if (k.channels.length === 1) {
        kernels.append(figure(grid(k.weights[0]), "weights (red positive, blue negative):"),
                       figure(kernelPicture(k.weights[0], 12), ""));
      } else {
        k.channels.forEach((channel, i) => {
          kernels.append(figure(kernelPicture(k.weights[i]), `${channel}`));
        });
        kernels.append(figure(kernelPicture(k.sum, 12), "their sum"));
      }
      part.append(kernels);
      part.append(element("h4", "", k.channels.length === 1
        ? `Input: ${detail.source < 0 ? "the image" : `${detail.source_name} map ${k.channels[0]}`}`
        : `Input: the ${k.channels.length} ${detail.source_name} maps`));
    } else {
      const words = {max: "maximum of each window", avg: "mean of each window",
                     mean: "mean of the whole map", batch_norm: "scale and shift",
                     identity: "nothing (dropout is off at evaluation)"};
      part.append(element("h4", "", `Made from ${detail.source_name} map ${detail.channel} by ` +
                                    (words[detail.operation] || detail.operation)));
    }
    const sources = element("div", "fm-sources");
    detail.sources.forEach((source) => {
      const frame = scaledMap(host, source, sourceShape,
                              detail.sources.length > 1 ? 48 : 144);
      frame.dataset.channel = source.channel;
      let holder = frame;
      if (host.open && detail.source >= 0) {
        holder = element("button", "fm-open");
        holder.type = "button";
        holder.setAttribute("aria-label", `open ${detail.source_name} map ${source.channel}`);
        holder.title = `open ${detail.source_name} map ${source.channel}`;
        holder.append(frame);
        holder.addEventListener("click", () => {
          host.open(detail.source, source.channel, sourcePixel(holder.closest(".fm-detail")));
        });
      }
      const caption = detail.sources.length > 1 ? `${source.channel}` : range(source);
      sources.append(figure(holder, host.open && detail.source >= 0 && detail.sources.length === 1
        ? `${caption}; click to open it` : caption));
    });
    part.append(sources);
    return part;
  }

  // Draws `detail` into `panel`; a click (or the arrow keys) on the enlarged map asks
  // `host.choose(pixel)` for the pixel written out, and draws it.
  function render(panel, detail, host) {
    panel.hidden = false;
    panel.fmDetail = detail;
    panel.dataset.layer = detail.layer;
    panel.dataset.channel = detail.channel;
    const head = element("div", "fm-head");
    const heading = element("h3", "", title(detail));
    heading.append(element("small", "", ` layer ${detail.layer} (${detail.kind}), ` +
      `${detail.channels} maps of ${detail.shape.join("×")}`));
    const close = element("button", "fm-close", "close");
    close.type = "button";
    close.addEventListener("click", () => {
      panel.hidden = true;
      if (host.closed) host.closed();
    });
    head.append(heading, close);
    const big = scaledMap(host, detail.map, detail.shape, 224);
    big.classList.add("fm-big");
    big.tabIndex = 0;
    big.setAttribute("role", "application");
    big.setAttribute("aria-label", `${title(detail)} enlarged: click a pixel, or use the arrow ` +
                                   "keys, to see how it is computed");
    const row = element("div", "fm-row");
    row.append(figure(big, `${range(detail.map)}; click a pixel (or arrow keys)`),
               madeFrom(detail, host));
    const pixelArea = element("div", "fm-pixel");
    pixelArea.setAttribute("aria-live", "polite");
    pixelArea.append(element("p", "hint", "Click a pixel of the enlarged map to see how it " +
                                          "is computed."));
    panel.replaceChildren(head, element("p", "fm-text", detail.text), row, pixelArea);

    let current = null;
    const choose = async (pixel) => {
      current = pixel;
      const answer = await host.choose(pixel);
      if (answer && current === pixel) showPixel(panel, {...detail, pixel: answer});
    };
    big.addEventListener("click", (event) => {
      const bounds = big.querySelector("img, canvas").getBoundingClientRect();
      const r = Math.floor((event.clientY - bounds.top) / bounds.height * detail.shape[0]);
      const c = Math.floor((event.clientX - bounds.left) / bounds.width * detail.shape[1]);
      if (r >= 0 && c >= 0 && r < detail.shape[0] && c < detail.shape[1]) choose([r, c]);
    });
    const moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
    big.addEventListener("keydown", (event) => {
      const move = moves[event.key];
      if (!move) return;
      event.preventDefault();
      if (!current) { choose([0, 0]); return; }
      choose([Math.min(Math.max(current[0] + move[0], 0), detail.shape[0] - 1),
              Math.min(Math.max(current[1] + move[1], 0), detail.shape[1] - 1)]);
    });
    if (detail.pixel) {
      current = detail.pixel.index;
      showPixel(panel, detail);
    }
    return big;
  }

  function showPixel(panel, detail) {
    panel.fmDetail = detail;
    const pixel = detail.pixel;
    const [r, c] = pixel.index;
    placeBox(panel.querySelector(".fm-big"), detail.shape, r, c, 1, 1);
    const windowed = ["convolution", "max", "avg"].includes(detail.operation);
    const span = detail.kernel_size.map((k, i) => (k - 1) * detail.dilation[i] + 1);
    panel.querySelectorAll(".fm-sources .fm-frame").forEach((frame) => {
      if (detail.operation === "mean") return;
      if (windowed) {
        placeBox(frame, detail.source_shape, pixel.start[0] - pixel.origin[0],
                 pixel.start[1] - pixel.origin[1], span[0], span[1]);
      } else {
        placeBox(frame, detail.source_shape, r, c, 1, 1);
      }
    });
    const area = panel.querySelector(".fm-pixel");
    const parts = [element("h4", "", `Pixel (${r}, ${c}) of ${title(detail)}`)];
    const op = detail.operation;
    if (op === "convolution") {
      const padding = detail.padding_mode === "zeros" ? "zeros" : `${detail.padding_mode} padding`;
      parts.push(element("p", "", `The window of each input map that this pixel sees (grey: ` +
        `padding, ${padding}), times the kernel, summed:`));
      const cards = element("div", "fm-channels");
      pixel.channels.forEach((part) => {
        const tables = element("div", "fm-row");
        tables.append(figure(grid(part.window, pixel.padding), "window"),
                      figure(grid(part.kernel), "kernel"),
                      figure(grid(part.products), "products"));
        const map = detail.source < 0 && pixel.channels.length === 1
          ? "input" : `${detail.source_name} map ${part.channel}`;
        const label = `${map}: sum of the products = ${long(part.sum)}`;
        // Up to three channels are shown open; more are listed, each opened on request.
        const few = pixel.channels.length <= 3;
        const card = element(few ? "div" : "details", "fm-channel");
        card.append(element(few ? "p" : "summary", "", label), tables);
        cards.append(card);
      });
      parts.push(cards);
      const sums = pixel.channels.map((part) => signed(part.sum));
      const written = sums.length > 8
        ? `${sums.slice(0, 4).join(" + ")} + … + ${sums.slice(-2).join(" + ")} ` +
          `(${sums.length} sums)`
        : sums.join(" + ");
      parts.push(element("p", "fm-sum", `${written} + bias ${signed(pixel.bias)} = ` +
                                       `${long(pixel.computed)}`));
    } else if (op === "max" || op === "avg") {
      const chosen = op === "max" ? pixel.chosen : null;
      parts.push(figure(grid(pixel.window, pixel.padding, chosen),
        `the ${detail.kernel_size.join("×")} window of ${detail.source_name} map ` +
        `${detail.channel}` + (pixel.padding.flat().some(Boolean) ? " (pad: padding)" : "")));
      parts.push(element("p", "fm-sum", op === "max"
        ? `maximum of the window = ${long(pixel.computed)}`
        : `sum ${long(pixel.sum)} / ${pixel.divisor} = ${long(pixel.computed)}`));
    } else if (op === "mean") {
      parts.push(element("p", "fm-sum", `sum of the ${pixel.divisor} values of ` +
        `${detail.source_name} map ${detail.channel}: ${long(pixel.sum)} / ${pixel.divisor} = ` +
        `${long(pixel.computed)}`));
    } else {
      const source = `${detail.source_name} map ${detail.channel} at (${r}, ${c}) = ` +
                     long(pixel.source);
      parts.push(element("p", "", source));
      parts.push(element("p", "fm-sum", op === "batch_norm"
        ? `${signed(pixel.source)} × ${signed(detail.scale)} + ${signed(detail.shift)} = ` +
          long(pixel.computed)
        : `${OPERATIONS[op](long(pixel.source))} = ${long(pixel.computed)}`));
    }
    const difference = Math.abs(pixel.computed - pixel.value);
    const same = difference <= pixel.tolerance;
    const check = element("p", "fm-check");
    check.append("the network's value: ", element("strong", "fm-value", long(pixel.value)),
      same ? ` — the same up to rounding (difference ${difference.toExponential(1)}; ` +
             `${pixel.tolerance_reason || "the network computes in float32"})`
           : ` — differs by ${difference.toExponential(2)}`);
    check.classList.toggle("same", same);
    parts.push(check);
    area.replaceChildren(...parts);
  }

  // A layer's maps as tiles, one button per map labelled with its number: the layer is one
  // Tab stop, the arrow keys move between its maps, and Enter (or a click) calls open(channel).
  // `picture(channel)` draws one map.
  function tiles(container, layer, count, picture, open) {
    const buttons = [];
    for (let channel = 0; channel < count; channel += 1) {
      const button = element("button", "fm-tile");
      button.type = "button";
      button.dataset.layer = layer.index;
      button.dataset.channel = channel;
      button.tabIndex = channel === 0 ? 0 : -1;
      button.title = `${layer.name} map ${channel}`;
      button.setAttribute("aria-label", `${layer.name} map ${channel}`);
      button.setAttribute("aria-pressed", "false");
      button.append(picture(channel), element("span", "", String(channel)));
      button.addEventListener("click", () => open(channel));
      buttons.push(button);
    }
    container.addEventListener("keydown", (event) => {
      const step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[event.key];
      const at = buttons.indexOf(document.activeElement);
      if (!step || at < 0) return;
      event.preventDefault();
      const next = buttons[Math.min(Math.max(at + step, 0), buttons.length - 1)];
      buttons[at].tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    });
    container.replaceChildren(...buttons);
  }

  // Marks the tile of the map shown in detail (none with layer null).
  function mark(root, layer, channel) {
    root.querySelectorAll(".fm-tile").forEach((tile) => {
      tile.setAttribute("aria-pressed", String(Number(tile.dataset.layer) === layer &&
                                               Number(tile.dataset.channel) === channel));
    });
  }

  return {render, tiles, mark};
})();
