"""The tutorial's figure, drawn on the server: generated curves between the artist's bounds.

matplotlib is imported on the first figure only: it takes ~0.5 s to import, which a server
that never draws should not pay at start. Figures are built on the object API (no pyplot),
so concurrent requests in the thread pool share no global figure state.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Format = Literal["png", "svg"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
# Element ids in the SVG (and gids on the lines): tests and scripts find the lines by them.
LOW_ID, HIGH_ID = "bound-low", "bound-high"
DPI = 100

_import_lock = threading.Lock()


@dataclass(frozen=True)
class FigureText:
    title: str
    d_accuracy: float | None = None
    d_score: float | None = None


def _matplotlib() -> Any:
    with _import_lock:
        os.environ.setdefault("MPLBACKEND", "Agg")
        import matplotlib

        matplotlib.use("Agg")
        return matplotlib


def curve_id(i: int) -> str:
    return f"curve-{i}"


def render(
    x: np.ndarray,
    curves: np.ndarray,
    text: FigureText,
    fmt: Format,
    width: int = 640,
    height: int = 480,
) -> bytes:
    """The figure as PNG or SVG bytes, ``width`` x ``height`` pixels (the SVG's points)."""
    mpl = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Every vertex is kept: the SVG's paths hold one point per x, as the data does.
    with mpl.rc_context(
        {"path.simplify": False, "svg.hashsalt": "curvegan", "svg.fonttype": "none"}
    ):
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x = np.asarray(x, dtype=np.float64)
        x2 = x * x
        # The tutorial's two bounds: the artist's curves a x^2 + (a - 1), a in [1, 2].
        ax.plot(x, 2 * x2 + 1, c="#74BCFF", lw=3, label="upper bound", gid=HIGH_ID)
        ax.plot(x, x2, c="#FF9359", lw=3, label="lower bound", gid=LOW_ID)
        for i, row in enumerate(np.asarray(curves, dtype=np.float64)):
            ax.plot(
                x, row, c="#4AD631", lw=2, label="generated" if i == 0 else None, gid=curve_id(i)
            )
        lines = []
        if text.d_accuracy is not None:
            lines.append(f"D accuracy = {text.d_accuracy:.2f} (0.5 for D to converge)")
        if text.d_score is not None:
            lines.append(f"D score = {text.d_score:.2f} (-1.38 for G to converge)")
        if lines:
            # The tutorial wrote these at (-0.5, 2.3), where its legend covered them: here
            # both sit above the dip of the upper bound, where no curve of the band goes.
            ax.text(0.5, 0.63, "\n".join(lines), fontsize=9, ha="center", transform=ax.transAxes)
        # The tutorial's 0..3, widened to every curve: one that strays is shown whole, not cut.
        finite = np.asarray(curves, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        low = min(0.0, float(finite.min())) if finite.size else 0.0
        high = max(3.0, float(finite.max())) if finite.size else 3.0
        ax.set_ylim(low - 0.05 * (high - low) * (low < 0), high + 0.05 * (high - low) * (high > 3))
        ax.set_title(text.title, fontsize=10)
        ax.legend(loc="upper center", fontsize=9)
        buf = io.BytesIO()
        # No version, no date: the same curves give the same bytes, wherever they are drawn.
        fig.savefig(
            buf,
            format=fmt,
            dpi=DPI,
            metadata={"Software": None} if fmt == "png" else {"Date": None},
        )
    return buf.getvalue()
