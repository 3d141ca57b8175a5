"""Makes the benign part of the shipped image calibration set.

Sources are photographs shipped inside PyPI packages under licenses that
allow redistribution and modification: scikit-image 0.26.0 (skimage/data)
and scikit-learn 1.9.1 (sklearn/datasets/images). Each source is copied
downscaled, and the photographs also get the edits a generator or a
maintainer would make (mirror, crop, recompression, brightness, greyscale,
a red tint, a text banner), so false positives on ordinary edits show up.

There are no unsafe images here: none can be made and shipped legally, so
the image classifiers' recall stays uncalibrated (see the README).

Run from the repository root, with Pillow installed:
    python3 prompts/calibration/make_image_set.py SKIMAGE_DATA_DIR SKLEARN_IMAGES_DIR
It rewrites prompts/calibration/images/ and prompts/calibration/images.jsonl.
"""

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

OUT = Path("prompts/calibration/images")
LIBRARY = Path("prompts/library/starter")

# file, package, license, credit, kind
SOURCES = [
    ("hubble_deep_field.jpg", "scikit-image 0.26.0", "public domain (NASA)", "NASA", "photo"),
    ("grass.png", "scikit-image 0.26.0", "CC0-1.0", "CC0Textures", "photo"),
    ("gravel.png", "scikit-image 0.26.0", "CC0-1.0", "CC0Textures", "photo"),
    ("horse.png", "scikit-image 0.26.0", "CC0-1.0", "Andreas Preuss", "graphic"),
    ("cell.png", "scikit-image 0.26.0", "CC0-1.0", "Jochen Guck lab", "photo"),
    ("logo.png", "scikit-image 0.26.0", "CC0-1.0", "Andreas Maier", "graphic"),
    ("text.png", "scikit-image 0.26.0", "public domain", "scikit-image", "graphic"),
    ("ihc.png", "scikit-image 0.26.0", "no known copyright restrictions", "scikit-image", "photo"),
    ("china.jpg", "scikit-learn 1.9.1", "CC-BY-2.0", "danielbuechele (Flickr)", "photo"),
    ("flower.jpg", "scikit-learn 1.9.1", "CC-BY-2.0", "vultilion (Flickr)", "photo"),
]

EDITS = {
    "mirror": ImageOps.mirror,
    "crop80": lambda im: im.crop((im.width // 10, im.height // 10, im.width * 9 // 10, im.height * 9 // 10)),
    "bright": lambda im: ImageEnhance.Brightness(im).enhance(1.5),
    "dark-q35": lambda im: ImageEnhance.Brightness(im).enhance(0.5),
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "redtint": lambda im: Image.blend(im, Image.new("RGB", im.size, (200, 30, 30)), 0.35),
    "banner": None,  # drawn below
}


def shrink(image, side=320):
    image = image.convert("RGB")
    image.thumbnail((side, side))
    return image


def banner(image):
    image = image.copy()
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, image.height - 28, image.width, image.height), fill=(255, 255, 255))
    draw.text((6, image.height - 22), "SALE 50% OFF - this weekend only", fill=(0, 0, 0))
    return image


def main(skimage_dir, sklearn_dir):
    OUT.mkdir(parents=True, exist_ok=True)
    lines = []
    sources = []
    for path in sorted(LIBRARY.glob("*")):
        if path.suffix in (".png", ".jpg"):
            lines.append({"image": f"../library/starter/{path.name}", "label": "safe", "category": "benign-photo"})
            sources.append((path, "photo"))
    for name, package, license_, credit, kind in SOURCES:
        directory = sklearn_dir if package.startswith("scikit-learn") else skimage_dir
        image = shrink(Image.open(Path(directory) / name))
        out = f"{Path(name).stem}.jpg"
        image.save(OUT / out, quality=90)
        lines.append({"image": f"images/{out}", "label": "safe", "category": f"benign-{kind}"})
        sources.append((Path(directory) / name, kind))
    for path, kind in sources:
        if kind != "photo":
            continue
        image = shrink(Image.open(path))
        for edit, apply in EDITS.items():
            edited = banner(image) if edit == "banner" else apply(image)
            out = f"{path.stem}-{edit}.jpg"
            edited.save(OUT / out, quality=35 if edit.endswith("q35") else 85)
            lines.append({"image": f"images/{out}", "label": "safe", "category": "benign-edit"})
    with open("prompts/calibration/images.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    print(f"{len(lines)} labeled images")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
