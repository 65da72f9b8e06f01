"""The page of cnnkit serve in a real browser (Chromium through Playwright) against a real
server: each view, the displayed numbers against cnnkit's, drawing on the canvas."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit import convolve1d, correlate2d
from cnnkit.filters import make_kernel, sample_image
from cnnkit.shapes import explain_output_size, output_shape
from tests.browser import needs_chromium, open_page
from tests.serve.helpers import png_bytes

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = needs_chromium

#: The console message Chromium writes for a refused request that a test asks for on purpose.
REFUSED = "Failed to load resource: the server responded with a status of 400"


@pytest.fixture(scope="module")
def page(server_url):
    """The page in a headless Chromium, with console errors and requests recorded."""
    with open_page(server_url + "/", height=1000) as tab:
        tab.set_default_timeout(20_000)
        tab.wait_for_selector("body[data-ready=true]")
        yield tab


def _set(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.dispatch_event(selector, "input")


def test_padding_and_stride_change_the_shown_size(page):
    """With padding 2 and stride 2 the page shows cnnkit's output size and formula."""
    page.select_option("#image-sample", "grid")
    _set(page, "#image-size", "20")
    page.select_option("#conv-padding", "number")
    _set(page, "#conv-padding-number", "2")
    _set(page, "#conv-stride", "2")
    rows, columns = output_shape((20, 20), 3, 2, 2)
    page.wait_for_function(f"document.getElementById('conv-shape').textContent === "
                           f"'{rows} × {columns}'")
    assert page.inner_text("#conv-formula-rows") == explain_output_size(20, 3, 2, 2)


def test_clicking_an_output_pixel_shows_its_sum(page):
    """A click on an output pixel shows the window, the kernel and a sum equal to
    cnnkit.correlate2d at that pixel (same settings as above)."""
    expected = correlate2d(sample_image("grid", 20), make_kernel("sobel-x"), 2, stride=2)
    row, column = (int(i) for i in np.argwhere(expected != 0)[0])
    canvas = page.locator("#conv-output")
    scale = float(canvas.get_attribute("data-scale"))
    box = canvas.bounding_box()
    width = float(page.evaluate("document.getElementById('conv-output').width"))
    factor = box["width"] / width
    page.mouse.click(box["x"] + (column + 0.5) * scale * factor,
                     box["y"] + (row + 0.5) * scale * factor)
    page.wait_for_function(f"document.getElementById('pixel-index').textContent === "
                           f"'({row}, {column})'")
    assert float(page.inner_text("#pixel-sum")) == pytest.approx(expected[row, column],
                                                                 rel=1e-5)
    assert float(page.inner_text("#pixel-value")) == pytest.approx(expected[row, column],
                                                                   rel=1e-5)
    assert page.locator("#pixel-kernel tr").count() == 3
    assert "×" in page.inner_text("#pixel-expression")
    # The keyboard moves the chosen pixel too.
    canvas.focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function(f"document.getElementById('pixel-index').textContent === "
                           f"'({row + 1}, {column})'")
    assert float(page.inner_text("#pixel-value")) == pytest.approx(expected[row + 1, column],
                                                                   rel=1e-5, abs=1e-12)


def test_an_invalid_combination_is_explained(page):
    """'same' padding with stride 2 shows cnnkit's explanation instead of an output."""
    page.select_option("#conv-padding", "same")
    page.wait_for_selector("#conv-error:not([hidden])")
    assert "only defined for stride 1" in page.inner_text("#conv-error")
    _set(page, "#conv-stride", "1")
    page.wait_for_selector("#conv-error", state="hidden")


def test_an_uploaded_image_is_the_playgrounds_input(page, tmp_path):
    """An uploaded image becomes the input: the page shows its size and cnnkit's output size."""
    (tmp_path / "wide.png").write_bytes(png_bytes(np.zeros((12, 18), np.uint8)))
    page.set_input_files("#image-upload", str(tmp_path / "wide.png"))
    page.wait_for_function("document.getElementById('conv-input-shape').textContent === "
                           "'12 × 18'")
    page.wait_for_function("document.getElementById('conv-shape').textContent === '12 × 18'")
    page.select_option("#image-sample", "grid")


def test_the_1d_view_shows_the_tutorials_answer(page):
    """The 1-D tab shows the textbook's 'same' result and an element's written-out sum."""
    page.click(".subtabs button[data-sub=signal]")
    same = page.locator(".signal-mode[data-padding=same] .outputs button")
    same.first.wait_for()
    assert same.all_inner_texts() == ["5", "14", "16", "26", "24", "34", "19", "22"]
    same.nth(3).click()
    assert page.locator(".signal-mode[data-padding=same] .expression").inner_text().endswith(
        "= 26")
    assert page.locator(".signal-mode[data-padding=same] .padded span.hit").count() == 5


def test_the_1d_view_takes_padding_and_stride(page):
    """With a padding of 2 and stride 2 the 1-D tab shows cnnkit's (and the textbook's)
    strided answer; 'full' with stride 2 is every second element of numpy.convolve's 'full';
    the three paddings side by side with stride 2 show cnnkit's refusal of 'same'."""
    x, w = [1, 3, 2, 4, 5, 6, 1, 3], [1, 0, 3, 1, 2]
    page.click("#tab-playground")
    page.click(".subtabs button[data-sub=signal]")
    page.select_option("#signal-padding", "number")
    _set(page, "#signal-padding-number", "2")
    _set(page, "#signal-stride", "2")
    outputs = page.locator(".signal-mode[data-padding='2'] .outputs button")
    page.wait_for_function("document.querySelectorAll(\".signal-mode[data-padding='2'] "
                           ".outputs button\").length === 4")
    expected = convolve1d(np.array(x, float), np.array(w, float), 2, stride=2)
    assert [float(v) for v in outputs.all_inner_texts()] == expected.tolist() == [5, 16, 24, 19]
    outputs.nth(1).click()
    assert page.locator(".signal-mode[data-padding='2'] .expression").inner_text().endswith(
        "= 16")
    page.select_option("#signal-padding", "full")
    full = page.locator(".signal-mode[data-padding=full] .outputs button")
    full.first.wait_for()
    assert [float(v) for v in full.all_inner_texts()] == np.convolve(x, w, "full")[::2].tolist()
    page.select_option("#signal-padding", "full, same and valid")
    page.wait_for_selector("#signal-error:not([hidden])")
    assert "only defined for stride 1" in page.inner_text("#signal-error")
    _set(page, "#signal-stride", "1")
    page.wait_for_selector("#signal-error", state="hidden")


def test_channels_and_pooling_views_render(page):
    """The channel view shows one row per filter; pooling shows cnnkit's size in ceil mode."""
    page.click(".subtabs button[data-sub=channels]")
    page.wait_for_selector("#channels-filters-view .filter")
    assert page.locator("#channels-filters-view .filter").count() == 2
    page.click(".subtabs button[data-sub=pool]")
    _set(page, "#pool-kernel", "3")
    page.check("#pool-ceil")
    rows, columns = output_shape((20, 20), 3, 3, 0, ceil_mode=True)
    page.wait_for_function(f"document.getElementById('pool-shape').textContent === "
                           f"'{rows} × {columns}'")


def test_drawing_a_stroke_shows_a_prediction_and_feature_maps(page):
    """A stroke drawn with the mouse gives a prediction, decoded feature-map images and an
    attribution image."""
    page.click("#tab-network")
    canvas = page.locator("#draw").bounding_box()
    page.mouse.move(canvas["x"] + 140, canvas["y"] + 50)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(canvas["x"] + 140, canvas["y"] + 50 + 18 * step)
    page.mouse.up()
    page.wait_for_selector("#network-top-list li")
    page.wait_for_function("""() => {
        const images = [...document.querySelectorAll('#network-layers img'),
                        document.getElementById('network-attribution'),
                        document.getElementById('network-seen')];
        return images.length === 2 + 6 + 6 + 8 + 8
            && images.every(i => i.complete && i.naturalWidth > 0);
    }""")
    assert page.locator("#network-top-list li").count() == 3
    assert "%" in page.inner_text("#network-top-list li >> nth=0")
    assert "inverted" in page.inner_text("#network-notes")


def test_uploading_an_image_to_the_network_predicts_it(page, tmp_path):
    """An image file chosen in the network view is predicted, as the model sees it."""
    (tmp_path / "digit.png").write_bytes(png_bytes(np.full((40, 30), 255, np.uint8)))
    page.locator("#network-timing").evaluate("element => { element.textContent = ''; }")
    page.set_input_files("#network-upload", str(tmp_path / "digit.png"))
    # An answer to an earlier drawing may still arrive first; the upload's answer follows it.
    page.wait_for_function("document.getElementById('network-notes').textContent"
                           ".includes('resized from 30×40 to 28×28')")
    assert page.inner_text("#network-timing") != ""


def _show_digit(page, tmp_path) -> None:
    """A 28×28 noise picture uploaded in the network view (saved as tmp_path/digit.png), once
    its maps are shown."""
    page.click("#tab-network")
    picture = np.random.default_rng(1).integers(0, 256, (28, 28), np.uint8)
    (tmp_path / "digit.png").write_bytes(png_bytes(picture))
    page.locator("#network-notes").evaluate("element => { element.textContent = ''; }")
    page.set_input_files("#network-upload", str(tmp_path / "digit.png"))
    page.wait_for_function("document.getElementById('network-notes').textContent"
                           ".includes('normalised') && !document.getElementById('network-notes')"
                           ".textContent.includes('resized')")
    page.locator(".fm-tile").first.wait_for()


def _map_reference(run_dir, tmp_path, layer: int, channel: int, pixel):
    """cnnkit.featuremaps' answer for the image the page sent last (the uploaded file)."""
    from cnnkit.featuremaps import map_detail
    from cnnkit.model import TrainedModel

    model = TrainedModel.load(run_dir, engine="numpy")
    inputs = model.normalise(model.prepare(tmp_path / "digit.png").pixels[np.newaxis])
    return model, map_detail(model, inputs, layer, channel, pixel)


def test_a_feature_map_opens_with_its_kernels_and_a_pixel(page, run_dir, tmp_path):
    """A tile labelled relu2 map 3 opens that map with conv2 map 3 as its source; opening the
    source shows one kernel per pool1 map (the checkpoint's), and a clicked pixel shows its
    windows and a sum equal to the network's value, which is cnnkit's."""
    _show_digit(page, tmp_path)
    tile = page.locator('.fm-tile[data-layer="4"][data-channel="3"]')
    assert tile.get_attribute("aria-label") == "relu2 map 3" and tile.inner_text() == "3"
    tile.click()
    detail = page.locator("#network-detail")
    detail.locator(".fm-text").wait_for()
    assert detail.locator(".fm-text").inner_text() == "relu2 map 3 = max(0, conv2 map 3)"
    detail.locator(".fm-open").click()
    page.wait_for_function("document.getElementById('network-detail').dataset.layer === '3'")
    assert detail.locator(".fm-kernels canvas").count() == 6 + 1
    box = detail.locator(".fm-big img").bounding_box()
    page.mouse.click(box["x"] + 4.5 * box["width"] / 14, box["y"] + 0.5 * box["height"] / 14)
    detail.locator(".fm-check").wait_for()
    assert detail.locator(".fm-pixel h4").inner_text() == "Pixel (0, 4) of conv2 map 3"
    model, reference = _map_reference(run_dir, tmp_path, 3, 3, [0, 4])
    computed = float(detail.locator(".fm-sum").inner_text().split("= ")[-1])
    value = float(detail.locator(".fm-value").inner_text())
    assert computed == pytest.approx(reference["pixel"]["computed"], rel=1e-5, abs=1e-6)
    assert value == pytest.approx(reference["pixel"]["value"], rel=1e-5, abs=1e-6)
    assert "the same up to rounding" in detail.locator(".fm-check").inner_text()
    detail.locator("details.fm-channel").first.click()
    kernel = detail.locator("details.fm-channel").first.locator("table").nth(1)
    assert [float(v) for v in kernel.locator("td").all_inner_texts()] == pytest.approx(
        model.checkpoint.model["3.weight"][3, 0].ravel().tolist(), rel=1e-3, abs=1e-6)
    # The window's first row lies in the padding (row 0, padding 1).
    assert detail.locator("details.fm-channel").first.locator("table").first.locator(
        "tr").first.locator("td.pad").count() == 3


def test_the_keyboard_opens_a_map_and_chooses_its_pixels(page, run_dir, tmp_path):
    """Tab reaches a layer's tiles, the arrow keys another map, Enter opens it, and the arrow
    keys on the enlarged map choose its pixels; Close gives the focus back to the tile."""
    _show_digit(page, tmp_path)
    page.locator('.fm-tiles .fm-tile[data-layer="1"]').first.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.layer") == "2"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    detail = page.locator("#network-detail")
    page.wait_for_function("document.activeElement.classList.contains('fm-big')")
    assert detail.locator("h3").inner_text().startswith("pool1 map 1")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#network-detail .fm-pixel h4')"
                           "?.textContent === 'Pixel (0, 1) of pool1 map 1'")
    _, reference = _map_reference(run_dir, tmp_path, 2, 1, [0, 1])
    assert float(detail.locator(".fm-value").inner_text()) == pytest.approx(
        reference["pixel"]["value"], rel=1e-5, abs=1e-6)
    assert detail.locator(".fm-pixel td.chosen").count() == 1
    detail.locator(".fm-close").click()
    assert detail.is_hidden()
    assert page.evaluate("[document.activeElement.dataset.layer, "
                         "document.activeElement.dataset.channel]") == ["2", "1"]


def test_the_report_view_shows_the_runs_report(page):
    """The report tab shows the run's report.html in a frame."""
    page.click("#tab-report")
    frame = page.frame_locator("#report-frame")
    assert frame.locator("#report-title").inner_text() == "Run report"


def test_no_console_error_and_nothing_from_outside(page, server_url):
    """No console error (except the refusal asked for above) and no request to another
    host."""
    assert [error for error in page.errors if REFUSED not in error] == []
    assert all(url.startswith((server_url, "data:")) for url in page.requests)
