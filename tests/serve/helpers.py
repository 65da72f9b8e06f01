"""Images the serve tests and the load benchmark send: PNG bytes, a drawn stroke."""

from __future__ import annotations

import io


def png_bytes(picture) -> bytes:
    """A uint8 array (or a Pillow image) as the bytes of a PNG file."""
    from PIL import Image

    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stroke_png(size: int = 280) -> bytes:
    """A dark vertical stroke on a light background, as a drawing on the page gives."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line([(size // 2, size // 7), (size // 2, size - size // 7)], fill=0,
                               width=size // 14)
    return png_bytes(image)
