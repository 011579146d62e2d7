"""How long `import aitk_nb` and `%load_ext aitk_nb` take, beside importing the heavy libraries the
toolkit defers until a verb needs them (issue 4: "fast to load", target <= 150 ms).

Each sample is a fresh interpreter (a subprocess), so nothing is cached in sys.modules; the time is
measured inside it around the import only (interpreter start-up excluded). For `%load_ext` the
shell is made first and not timed: in a kernel IPython is already loaded.

    .venv/bin/python benchmarks/import_time.py [--samples 11] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGET_MS = 150.0

TIMED = "import time as _t\n{setup}\n_s = _t.perf_counter()\n{stmt}\nprint((_t.perf_counter() - _s) * 1000)"
CASES: dict[str, tuple[str, str]] = {
    "import aitk_nb": ("", "import aitk_nb"),
    "%load_ext aitk_nb": ("from IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()",
                          "ip.run_line_magic('load_ext', 'aitk_nb')"),
    # what the toolkit would cost if it imported these eagerly
    "import azure SDKs": ("", "import azure.identity, azure.mgmt.resource.resources, azure.mgmt.resource.deployments, "
                              "azure.mgmt.appcontainers, azure.mgmt.storage, azure.storage.fileshare"),
    "import gradio_client": ("", "import gradio_client"),
    "import pandas": ("", "import pandas"),
    "import ipywidgets": ("", "import ipywidgets"),
    "import matplotlib": ("", "import matplotlib.figure"),
}
# all of them in one interpreter (they share numpy and friends, so less than the sum)
CASES["all deferred, eagerly"] = ("", "; ".join(stmt for name, (_, stmt) in CASES.items() if not name.endswith("aitk_nb")))


def sample(setup: str, stmt: str) -> float | None:
    proc = subprocess.run([sys.executable, "-c", TIMED.format(setup=setup, stmt=stmt)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None  # not installed here
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=11, help="fresh interpreters per case; the median is shown (default 11)")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = ap.parse_args(argv)
    medians: dict[str, float | None] = {}
    for name, (setup, stmt) in CASES.items():
        times = [sample(setup, stmt) for _ in range(args.samples)]
        ok = [t for t in times if t is not None]
        medians[name] = statistics.median(ok) if ok else None
        if not args.json:
            shown = "not installed" if not ok else f"{medians[name]:8.1f} ms median  (min {min(ok):.1f}, max {max(ok):.1f})"
            print(f"{name:<22} {shown}", flush=True)
    load = max(medians["import aitk_nb"] or 0, medians["%load_ext aitk_nb"] or 0)
    if args.json:
        print(json.dumps(medians))
    else:
        eager = medians["all deferred, eagerly"]
        print(f"\nload time {load:.1f} ms; target <= {TARGET_MS:.0f} ms: {'met' if load <= TARGET_MS else 'NOT met'}"
              + (f"; importing the deferred libraries eagerly would add {eager:.0f} ms" if eager else ""))
    return 0 if load <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
