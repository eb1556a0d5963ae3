"""Refresh the Swagger UI and ReDoc files that /docs and /redoc serve, and uPlot, the one chart
library the dashboard (/) loads (service/api/static/vendor): they come from the npm registry's
tarballs, checked against the registry's integrity hash, so the pages render with no internet.
Run: python scripts/vendor_assets.py [--swagger V] [--redoc V] [--uplot V]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR = Path(__file__).resolve().parent.parent / "service" / "api" / "static" / "vendor"
# ReDoc stays on 2.x: FastAPI's get_redoc_html writes the <redoc spec-url> tag 2.x reads.
# uPlot: MIT, ~50 KB, draws 10 000-point histories on a canvas without a framework.
DEFAULTS = {"swagger-ui-dist": "5.35.0", "redoc": "2.5.2", "uplot": "1.6.32"}
# package -> (directory under VENDOR, files taken from the tarball's package/ folder)
FILES = {
    "swagger-ui-dist": (
        "swagger-ui",
        [
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            "LICENSE",
            # The licences of the third-party code the bundle holds.
            "swagger-ui-bundle.js.LICENSE.txt",
        ],
    ),
    "redoc": (
        "redoc",
        ["bundles/redoc.standalone.js", "LICENSE", "bundles/redoc.standalone.js.LICENSE.txt"],
    ),
    # The IIFE build: a plain <script> defines window.uPlot, no bundler needed.
    "uplot": ("uplot", ["dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE"]),
}


# Edits made to a vendored file, each with why: (package, file, text, replacement, reason).
# ReDoc's side menu shows Redocly's logo from Redocly's CDN, with no option to turn it off:
# the one request /redoc would send off the machine. It gets a blank local image instead.
BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
PATCHES = [
    (
        "redoc",
        "redoc.standalone.js",
        'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"',
        f'src:"{BLANK_GIF}"',
        "the side menu's Redocly logo came from cdn.redoc.ly: a blank inline image instead",
    ),
]


def _patch(package: str, target: Path) -> list[str]:
    done = []
    for name, file, text, replacement, reason in PATCHES:
        if name != package:
            continue
        path = target / file
        source = path.read_text(encoding="utf-8")
        if source.count(text) != 1:
            raise SystemExit(f"{package}: {file} no longer holds {text!r} once; review PATCHES")
        path.write_text(source.replace(text, replacement), encoding="utf-8")
        done.append(f"{file}: {reason}")
    return done


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def fetch(package: str, version: str) -> dict[str, str]:
    meta = json.loads(_get(f"{REGISTRY}/{package}/{version}"))
    tarball = _get(meta["dist"]["tarball"])
    algo, _, digest = meta["dist"]["integrity"].partition("-")
    if base64.b64encode(hashlib.new(algo, tarball).digest()).decode() != digest:
        raise SystemExit(f"{package}@{version}: tarball does not match its integrity hash")
    folder, names = FILES[package]
    target = VENDOR / folder
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        for name in names:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{package}@{version}: no {name}")
            (target / Path(name).name).write_bytes(member.read())
    patched = _patch(package, target)
    return {
        "version": version,
        "license": meta.get("license", ""),
        "tarball": meta["dist"]["tarball"],
        "integrity": meta["dist"]["integrity"],
        "files": sorted(f"{folder}/{Path(n).name}" for n in names),
        **({"patched": patched} if patched else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swagger", default=DEFAULTS["swagger-ui-dist"])
    parser.add_argument("--redoc", default=DEFAULTS["redoc"])
    parser.add_argument("--uplot", default=DEFAULTS["uplot"])
    args = parser.parse_args()
    record = {
        "swagger-ui-dist": fetch("swagger-ui-dist", args.swagger),
        "redoc": fetch("redoc", args.redoc),
        "uplot": fetch("uplot", args.uplot),
    }
    (VENDOR / "vendored.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
