"""The page of cnnkit serve in a real browser (Chromium through Playwright) against a real
server: each view, the displayed numbers against cnnkit's, drawing on the canvas."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit import correlate2d
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
        return images.length === 6 && images.every(i => i.complete && i.naturalWidth > 0);
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
