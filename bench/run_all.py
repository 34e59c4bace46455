"""`make bench`: every benchmark in bench/, each printing ratios measured in its own run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    ["bench.audit_bench", "--labs", "50"],
    ["bench.latency_bench"],
    ["bench.store_bench", "--days", "30"],
    ["bench.report_bench"],
    ["bench.daemon_bench"],
    ["bench.judge_bench"],
    ["bench.clients_bench", "--labs", "200"],
    ["bench.fault_bench", "--labs", "24"],
    ["bench.class_bench", "--labs", "40"],
    ["bench.start_bench"],
]


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    failed = []
    for module, *args in BENCHMARKS:
        if not (root / (module.replace(".", "/") + ".py")).exists():
            print(f"== {module}: not present, skipped")
            continue
        print(f"== {module} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", module, *args], cwd=root, check=False).returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
