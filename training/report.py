"""The HTML report of a training run: loss curve, throughput, validation metrics, the config.

Written to ``<run_dir>/report.html``; plots are PNGs (matplotlib, headless ``Agg``) embedded as
data URIs, so the file is self-contained (no broken links when it is copied or served).

Example:
    >>> write_training_report(run_dir, spec, summary)
    '/lake/_runs/train/g0-1a2b3c4d-20261201T120000/report.html'
"""

from __future__ import annotations

import base64
import html
import io
import json
import os

from graphlake.training.run import TrainRun


def png_bytes(fig) -> bytes:
    """The PNG file of a matplotlib figure (90 dpi, tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def data_uri(fig) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode()


def read_history(run_dir: str) -> list[dict]:
    """The records of ``<run_dir>/metrics.jsonl`` (``[]`` when the run wrote none)."""
    return TrainRun(run_dir).history()


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plots(history: list[dict], encode=data_uri) -> list[tuple[str, object]]:
    """``[(title, encode(figure))]``: loss per step (raw and smoothed), edges/s, the learning rate
    when a schedule recorded it, validation metrics per epoch; ``encode`` defaults to a data URI
    (:func:`png_bytes` gives PNG files' bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    steps = [h for h in history if "loss" in h]
    if steps:
        x, loss = [h["step"] for h in steps], [h["loss"] for h in steps]
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot(x, loss, alpha=0.3, label="loss")
        ax.plot(x, _smooth(loss, max(1, len(loss) // 50)), label="smoothed")
        ax.set_xlabel("step"), ax.set_ylabel("training loss"), ax.legend(), ax.grid(alpha=0.3)
        out.append(("Training loss", encode(fig)))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.plot(x, [h["edges_per_s"] for h in steps])
        ax.set_xlabel("step"), ax.set_ylabel("seed edges / s (all ranks)"), ax.grid(alpha=0.3)
        out.append(("Throughput", encode(fig)))
        plt.close(fig)
        scheduled = [h for h in steps if "lr" in h]
        if scheduled:
            fig, ax = plt.subplots(figsize=(7, 2.4))
            ax.plot([h["step"] for h in scheduled], [h["lr"] for h in scheduled])
            ax.set_xlabel("step"), ax.set_ylabel("learning rate"), ax.grid(alpha=0.3)
            out.append(("Learning rate (lr_schedule)", encode(fig)))
            plt.close(fig)
    vals = [h for h in history if any(k.startswith("val_") for k in h) and not h.get("final")]
    if vals:
        fig, ax = plt.subplots(figsize=(7, 3))
        for key in sorted({k for h in vals for k in h if k.startswith("val_") and "@" in k}):
            ax.plot([h["epoch"] for h in vals], [h.get(key) for h in vals], marker="o", label=key[4:])
        ax.set_xlabel("epoch"), ax.set_ylabel("validation"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
        out.append(("Validation metrics per epoch", encode(fig)))
        plt.close(fig)
    return out


def write_training_report(run_dir: str, spec: dict, summary: dict) -> str:
    """Write ``<run_dir>/report.html`` and return its path."""
    history = read_history(run_dir)
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
                   for k, v in sorted(summary.items()) if k != "validation")
    vals = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td></tr>" if isinstance(v, float)
                   else f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in sorted((summary.get("validation") or {}).items()))
    figures = "".join(f"<h2>{html.escape(t)}</h2><img alt=\"{html.escape(t)}\" src=\"{uri}\">" for t, uri in plots(history))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>graphlake training run {html.escape(spec['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:900px}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}}img{{max-width:100%}}</style></head>
<body><h1>Training run {html.escape(spec['run_id'])}</h1>
<p>graph version {spec['graph_version']}, config {html.escape(spec['config_hash'])}, snapshot
<code>{html.escape(spec['snapshot'])}</code></p>
<h2>Summary</h2><table>{rows}</table>
{f'<h2>Validation (held-out slice of the training edges)</h2><table>{vals}</table>' if vals else ''}
{figures or '<p>No steps recorded.</p>'}
<h2>Configuration</h2><pre>{html.escape(json.dumps(spec['config'], indent=1, sort_keys=True))}</pre>
</body></html>
"""
    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
