"""Render the app icon (resources/icons/crm-desktop.svg) to the PNG sizes desktops use and a multi-size .ico.

Run at build time by packaging/build.sh; the output is not committed::

    python packaging/render_icons.py OUT_DIR

writes ``OUT_DIR/hicolor/<N>x<N>/apps/crm-desktop.png`` for each size in :data:`PNG_SIZES` (the freedesktop icon
theme layout, ready to copy under ``share/icons``), ``OUT_DIR/hicolor/scalable/apps/crm-desktop.svg`` and
``OUT_DIR/crm-desktop.ico`` (Windows' sizes, up to 256 px).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ICON_NAME = "crm-desktop"
SOURCE = Path(__file__).resolve().parent.parent / "resources" / "icons" / f"{ICON_NAME}.svg"
#: The sizes the freedesktop icon theme spec and AppStream ask for (64 and 128 are required by software centres).
PNG_SIZES = (16, 32, 48, 64, 128, 256, 512)
#: Windows reads up to 256 px from an .ico.
ICO_SIZES = (16, 32, 48, 64, 128, 256)


def render_pngs(source: Path, out_dir: Path, sizes: tuple[int, ...] = PNG_SIZES) -> dict[int, Path]:
    """Render ``source`` square at each size with Qt's SVG renderer; return each size's PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(source))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {source} is not a valid SVG")
    written = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        target = out_dir / "hicolor" / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"render_icons: cannot write {target}")
        written[size] = target
    return written


def write_ico(pngs: dict[int, Path], target: Path, sizes: tuple[int, ...] = ICO_SIZES) -> None:
    """One .ico holding every size of ``sizes``, each from its own rendering (not scaled from the largest)."""
    from PIL import Image

    images = [Image.open(pngs[size]).convert("RGBA") for size in sizes]
    largest = images[-1]
    # Pillow takes the image of each requested size from append_images when one matches, else scales the first.
    largest.save(target, format="ICO", sizes=[(s, s) for s in sizes], append_images=images[:-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the icons to")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the SVG icon (default: the app's)")
    args = parser.parse_args(argv)
    pngs = render_pngs(args.source, args.out_dir)
    scalable = args.out_dir / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.source, scalable)
    write_ico(pngs, args.out_dir / f"{ICON_NAME}.ico")
    print(f"icons: {', '.join(str(s) for s in sorted(pngs))} px PNG, {ICON_NAME}.ico in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
