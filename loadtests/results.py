"""The one results shape every benchmark writes, and a printer for it.

A results file is ``loadtests/results/<bench>.json``::

    {"bench": name,
     "command": the exact command line that produced it,
     "when": ISO-8601 UTC timestamp,
     "host": {"cpus": n, "python": v, "ray": v, "locust": v},
     "code": {"head": the commit measured, "changed": files changed on top of it} (null outside git),
     "runs": [{"system": "surge" | "baseline" | ..., "req_per_s": x, "p50_ms": x, "p99_ms": x,
               ...bench-specific keys}],
     "summary": {...ratios and other headline figures}}

Versions are read from package metadata, so writing results never imports Ray or Locust
(Locust monkey-patches the standard library on import).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRED_RUN_KEYS = ("system", "req_per_s", "p50_ms", "p99_ms")
_BENCH_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def host_info() -> dict[str, Any]:
    """Describe the machine and the versions that matter for a measurement."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "ray": _version("ray"),
        "locust": _version("locust"),
    }


def code_version() -> dict[str, Any] | None:
    """The commit measured and the files changed on top of it (read-only git; None outside a checkout)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head, "changed": [line[3:] for line in status.splitlines() if line.strip()]}


def current_command() -> str:
    """The command line of this process, shell-quoted so it can be pasted back."""
    return shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


def write_results(
    bench: str,
    runs: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    command: str | None = None,
    results_dir: Path | None = None,
    code: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<results_dir>/<bench>.json`` in the shared shape and return its path.

    ``bench`` must be a plain file name (letters, digits, ``_ . -``). Every run must carry
    ``system``, ``req_per_s``, ``p50_ms`` and ``p99_ms``; other keys are kept as given.
    ``command`` defaults to this process's command line; ``code`` to `code_version()` now (a bench
    whose runs are long passes the one it took before them). An existing file is replaced.
    Raises ``ValueError`` on a bad name or a run missing a required key.
    """
    if not _BENCH_NAME.match(bench):
        raise ValueError(f"bench name must be a plain file name, got {bench!r}")
    for i, run in enumerate(runs):
        missing = [k for k in REQUIRED_RUN_KEYS if k not in run]
        if missing:
            raise ValueError(f"run {i} is missing {missing}")
    doc = {
        "bench": bench,
        "command": command if command is not None else current_command(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": host_info(),
        "code": dict(code) if code is not None else code_version(),
        "runs": [dict(r) for r in runs],
        "summary": dict(summary),
    }
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{bench}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def format_results(doc: Mapping[str, Any]) -> str:
    """Render a results document as a small table, the summary and the command."""
    cols = ["system", "req_per_s", "p50_ms", "p99_ms", "requests", "failures", "cpu_s"]
    rows = [[_fmt(run.get(c)) for c in cols] for run in doc["runs"]]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = [f"bench: {doc['bench']}  ({doc['when']}, {doc['host'].get('cpus')} cpus)"]
    lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for r in rows:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    for key, value in doc.get("summary", {}).items():
        lines.append(f"{key}: {json.dumps(value)}")
    lines.append(f"command: {doc['command']}")
    return "\n".join(lines)


def print_results(doc_or_path: Mapping[str, Any] | Path | str) -> None:
    """Print a results document (or the file at a path) as ``format_results`` renders it."""
    doc = doc_or_path if isinstance(doc_or_path, Mapping) else json.loads(Path(doc_or_path).read_text())
    print(format_results(doc))


if __name__ == "__main__":
    for arg in sys.argv[1:] or sorted(str(p) for p in RESULTS_DIR.glob("*.json")):
        print_results(arg)
        print()
