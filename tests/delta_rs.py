"""delta-rs' own scan of a table (``DeltaTable.to_pyarrow_table``), run in a child process.

That scan makes the interpreter abort at exit in most processes that use it ("terminate called
without an active exception", deltalake 1.6.6 with pyarrow 21-26), so a test process never calls
it: the child prints the rows as JSON and leaves with ``os._exit(0)``, skipping the exit path.
"""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = """
import json, os, sys
from deltalake import DeltaTable
rows = DeltaTable(sys.argv[1]).to_pyarrow_table().to_pylist()
sys.stdout.write(json.dumps(rows, default=str))
sys.stdout.flush()
os._exit(0)
"""


def scan(path: str) -> list[dict]:
    """Every row of the latest version of the Delta table at ``path``, as delta-rs reads it."""
    done = subprocess.run([sys.executable, "-c", _CHILD, path], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"delta-rs could not read {path}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)
