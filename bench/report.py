"""Result files (JSON) and the plots made from several of them.

A result file is one run: what was asked (``config``), throughput, latency percentiles per
operation kind and overall, and errors by kind. Runs at different concurrencies, or against
different targets, are separate files; ``plot`` lines them up, one line per target (and workload,
when the files mix workloads), so a sweep is a shell loop plus one ``kvdb bench plot``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
REQUIRED = {"schema": int, "workload": str, "target": str, "concurrency": int, "config": dict,
            "started_at": str, "duration": float, "ops": int, "throughput": float, "latency_us": dict,
            "errors": dict, "error_count": int}
"""The keys every result has, with their types (an int is accepted where a float is expected)."""


class ResultError(ValueError):
    """A file is not a benchmark result this version understands."""


def write_result(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def check_result(result: Any, where: str = "result") -> dict[str, Any]:
    """``result`` if it has every REQUIRED key with the right type; plotting a wrong file should say so."""
    if not isinstance(result, dict):
        raise ResultError(f"{where}: not a JSON object")
    for key, kind in REQUIRED.items():
        value = result.get(key)
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise ResultError(f"{where}: '{key}' missing or not {kind.__name__}")
    if result["schema"] != SCHEMA_VERSION:
        raise ResultError(f"{where}: schema {result['schema']}, this version reads {SCHEMA_VERSION}")
    if "overall" not in result["latency_us"]:
        raise ResultError(f"{where}: latency_us has no 'overall'")
    return result


def read_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"{path}: {exc}") from None
    return check_result(data, str(path))


def range_change(ranges: dict[str, Any] | None) -> str | None:
    """What happened to kvdb's ranges during a run (``result["ranges"]``), if anything did."""
    if ranges is None or ranges["before"] == ranges["after"]:
        return None
    before, after = ranges["before"], ranges["after"] or {"count": "?", "leaders_by_store": {}}
    return (f"ranges changed during the run: {before['count']} -> {after['count']} "
            f"(leaders by store {before['leaders_by_store']} -> {after['leaders_by_store']})")


def summary_line(result: dict[str, Any]) -> str:
    """The line ``kvdb bench`` prints at the end of a run (and the bank audit's finding, if it failed)."""
    lat = result["latency_us"]["overall"]
    errors = ", ".join(f"{k} {v}" for k, v in result["errors"].items()) or "none"
    percentiles = " ".join(f"{p} {lat[p]:,.0f}" for p in ("p50", "p95", "p99", "p99.9"))
    line = (f"{result['workload']} on {result['target']}: {result['throughput']:,.0f} ops/s over "
            f"{result['duration']:.1f}s ({result['ops']:,} ops, concurrency {result['concurrency']}")
    if "rate" in result:
        line += (f", open loop: target {result['rate']:,.0f} ops/s, {result['missed']:,} scheduled requests "
                 "never sent")
    line += f"); latency µs {percentiles}; errors: {errors}"
    if "abort_rate" in result:
        line += f"; aborted attempts {result['aborts']:,} ({result['abort_rate']:.1%})"
    if (change := range_change(result.get("ranges"))) is not None:
        line += f"; {change}"
    bank = result.get("bank")
    if bank is not None:
        line += (f"; bank total {bank['total']:,} over {bank['accounts']:,} accounts conserved" if bank["ok"]
                 else f"\nBANK INVARIANT BROKEN: {bank['violation']}")
    return line


def align(lines: list[tuple[str, ...]]) -> str:
    """Rows of cells as a text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                     for line in lines)


def _series(results: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    results = list(results)
    several_workloads = len({r["workload"] for r in results}) > 1
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        label = f"{r['target']} {r['workload']}" if several_workloads else r["target"]
        lines.setdefault(label, []).append(r)
    for points in lines.values():
        points.sort(key=lambda r: r["concurrency"])
    return lines


def plot(results: list[dict[str, Any]], out_dir: Path, prefix: str = "") -> list[Path]:
    """Writes ``throughput.png`` and ``latency.png`` (p99) against total concurrency; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    if not results:
        raise ResultError("no results to plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = _series(results)
    workloads = ", ".join(sorted({r["workload"] for r in results}))
    paths = []
    for name, ylabel, value in (
            ("throughput", "throughput (ops/s)", lambda r: r["throughput"]),
            ("latency", "p99 latency (ms)", lambda r: r["latency_us"]["overall"]["p99"] / 1000)):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, points in sorted(lines.items()):
            ax.plot([r["concurrency"] for r in points], [value(r) for r in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 16, not 2^4
        ax.set_xlabel("concurrency (requests in flight, all processes)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{workloads}: {ylabel.split(' (')[0]} vs concurrency")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{prefix}{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
