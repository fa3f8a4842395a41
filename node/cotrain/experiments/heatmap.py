"""The robustness heat-map, drawn with Pillow: one panel per data set and partition, rows pipelines, columns
attacks, each cell the accuracy drop (percentage points) at the grid's largest malicious fraction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from cotrain.experiments.robustness import lookup

CELL_W, CELL_H = 66, 28
LABEL_W = 210  # the pipeline names left of each panel
HEADER_H = 150  # the rotated attack names above each panel
TITLE_H = 28
MARGIN = 16
OVERHANG = 80  # the last rotated attack name reaches past its column
#: Drops at or above this many points get the darkest colour.
SATURATE_PP = 30.0
FONT_SIZE = 13


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def colour(drop_pp: float | None) -> tuple[int, int, int]:
    """White at no drop, deepening red up to :data:`SATURATE_PP`; green for a gain; grey when missing."""
    if drop_pp is None or math.isnan(drop_pp):
        return (220, 220, 220)
    if drop_pp < 0:
        share = min(-drop_pp / SATURATE_PP, 1.0)
        return (round(255 - 120 * share), 255, round(255 - 120 * share))
    share = min(drop_pp / SATURATE_PP, 1.0)
    return (round(255 - 75 * share), round(255 - 225 * share), round(255 - 225 * share))


def _vertical_text(text: str, font: Any) -> Image.Image:
    box = font.getbbox(text)
    label = Image.new("RGBA", (box[2] + 4, box[3] + 4), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((2, 0), text, font=font, fill=(0, 0, 0, 255))
    return label.rotate(60, expand=True, resample=Image.Resampling.BICUBIC)


def draw_heatmap(summary: Mapping[str, Any]) -> Image.Image:
    """Render the summary's accuracy drops at its largest malicious fraction as a PNG-ready image."""
    settings = summary["settings"]
    cells = lookup(summary)
    fraction = max(settings["fractions"])
    attacks = list(settings["attacks"])
    pipelines = [p["name"] for p in settings["pipelines"]]
    panels = [(d, p) for d in settings["datasets"] for p in settings["partitions"]]
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    panel_w = LABEL_W + CELL_W * len(attacks) + OVERHANG
    panel_h = TITLE_H + HEADER_H + CELL_H * len(pipelines) + MARGIN
    top = 40
    title = (
        f"Accuracy drop (percentage points) vs. the same pipeline without attack, {fraction:.0%} attackers, "
        f"mean of {len(settings['seeds'])} seed(s); {settings['contributors']} contributors, "
        f"{settings['rounds']} rounds"
    )
    width = max(MARGIN + columns * panel_w, 2 * MARGIN + round(_font(FONT_SIZE + 2).getlength(title)))
    image = Image.new("RGB", (width, top + rows * panel_h + 30), "white")
    draw = ImageDraw.Draw(image)
    small = _font(FONT_SIZE - 1)
    draw.text((MARGIN, 10), title, font=_font(FONT_SIZE + 2), fill="black")
    for n, (dataset, partition) in enumerate(panels):
        x0 = MARGIN + (n % columns) * panel_w
        y0 = top + (n // columns) * panel_h
        label = "IID" if partition == "iid" else f"non-IID (Dirichlet alpha={settings['dirichlet_alpha']})"
        draw.text((x0, y0 + 4), f"{dataset}, {label}", font=_font(FONT_SIZE + 1), fill="black")
        grid_y = y0 + TITLE_H + HEADER_H
        for j, attack in enumerate(attacks):
            text = _vertical_text(attack, small)
            cx = x0 + LABEL_W + j * CELL_W + CELL_W // 2
            image.paste(text, (cx - 6, grid_y - text.height - 4), text)
        for i, pipeline in enumerate(pipelines):
            y = grid_y + i * CELL_H
            draw.text((x0, y + 7), pipeline, font=small, fill="black")
            for j, attack in enumerate(attacks):
                x = x0 + LABEL_W + j * CELL_W
                drop = cells.get((dataset, partition, pipeline, attack, fraction), {}).get("drop_pp")
                draw.rectangle((x, y, x + CELL_W - 1, y + CELL_H - 1), fill=colour(drop), outline="white")
                shown = "-" if drop is None else f"{drop:.1f}"
                shown_width = draw.textlength(shown, font=small)
                draw.text((x + (CELL_W - shown_width) / 2, y + 7), shown, font=small, fill="black")
    legend_y = image.height - 24
    draw.text((MARGIN, legend_y + 2), "points:", font=small, fill="black")
    for k in range(11):
        value = -SATURATE_PP / 2 + k * (1.5 * SATURATE_PP / 10)
        x = MARGIN + 60 + k * 50
        draw.rectangle((x, legend_y, x + 48, legend_y + 16), fill=colour(value))
        draw.text((x + 8, legend_y + 2), f"{value:.0f}", font=small, fill="black")
    return image
