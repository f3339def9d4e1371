"""The report in a real browser: headless Chromium renders it, screenshots it, and the
page's own check confirms that every image decoded and no error happened.

Skipped (with the reason) only when no Chromium binary is installed; `make browser`
installs Debian's `chromium` package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary (chromium, chromium-browser or google-chrome) on PATH; "
    "install it with `make browser` (apt-get install chromium)",
)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _png_pixels(path: Path) -> np.ndarray:
    """Decode the screenshot (Pillow, a matplotlib dependency) as uint8 RGB."""
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG file"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int32)


def test_report_renders_in_chromium(report_file: Path, tmp_path: Path) -> None:
    url = report_file.resolve().as_uri()

    # 1. the DOM after load: the page's own check wrote its counts on <body>
    dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, "no <body> in the dumped DOM"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    n_img = report_file.read_text(encoding="utf-8").count("<img ")
    assert n_img >= 5
    assert attrs.get("data-images") == str(n_img), attrs  # the check ran, saw every image
    assert attrs.get("data-broken-images") == "0", attrs  # every image decoded
    assert attrs.get("data-errors") == "0", attrs  # no page error
    # the report logs nothing: any console message (error, warning, log) is a failure
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console

    # 2. the first screen, as a person sees it
    shot = tmp_path / "first-screen.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path / "p2")
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    px = _png_pixels(shot)
    assert px.shape == (2000, 1280, 3)
    # not blank: mostly white page with real content (text, tables, figures)
    non_white = (px.min(axis=2) < 200).mean()
    assert 0.01 < non_white < 0.6, non_white
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50  # antialiased text and figures
    # the title bar's accent rule (#2457c5) is drawn near the top
    accent = np.all(np.abs(px[:250] - np.array([0x24, 0x57, 0xC5])) < 12, axis=2)
    assert accent.sum() > 500
