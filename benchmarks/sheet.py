"""One PNG of labelled sample grids, side by side: how the benchmarks show what each variant draws."""

from __future__ import annotations

from pathlib import Path

LABEL_HEIGHT = 18


def sample_sheet(rows: list[tuple[str, list[tuple[str, str | Path]]]], path: Path) -> None:
    """Tile ``rows`` of (row label, [(column label, grid PNG), ...]) into one labelled PNG at ``path``.

    Grids of a row are scaled to the first grid's height; a row label goes in the top-left
    corner of its first grid's caption.
    """
    from PIL import Image, ImageDraw

    loaded = [(label, [(name, Image.open(p).convert("RGB")) for name, p in grids]) for label, grids in rows]
    height = loaded[0][1][0][1].height
    for _, grids in loaded:
        for i, (name, image) in enumerate(grids):
            grids[i] = (name, image.resize((round(image.width * height / image.height), height)))
    width = max(sum(image.width for _, image in grids) for _, grids in loaded)
    sheet = Image.new("RGB", (width, len(loaded) * (height + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, grids) in enumerate(loaded):
        top, left = r * (height + LABEL_HEIGHT), 0
        for name, image in grids:
            sheet.paste(image, (left, top + LABEL_HEIGHT))
            caption = f"{label}: {name}" if label and left == 0 else name
            draw.text((left + 4, top + 3), caption, fill="black")
            left += image.width
    sheet.save(path)
