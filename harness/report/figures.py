"""Matplotlib figures as PNG bytes: the one place reports turn a figure into an image (the Agg
backend, no screen)."""

from __future__ import annotations

import io


def pyplot():
    """matplotlib.pyplot on the Agg backend; text is text (a model named ``$\\x{$`` is not
    mathtext, which would fail to parse or render something else)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG (tight layout); the figure is closed."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
