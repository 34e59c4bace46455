"""The policy judge: CPU a lab against 0.1's, p99 of one comparison, the time limit under attack.

    python -m bench.judge_bench [--labs 120] [--pairs 300] [--statements 300]

1. CPU to judge a lab, cold (documents the engine has not seen) and warm (the next audit of the same
   class), for this tree and for 0.1's statement-level judge (BASELINE_REF, exported from git), each
   in a fresh process on the same class of labs with typical student changes. The ratio is the claim.
2. The p99 time of one comparison over seeded random policy pairs, each asked of a new engine.
3. An adversarial policy (hundreds of overlapping wildcard statements with conditions): how long
   the comparison and a whole lab's judgement take against the time limit.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from io import BytesIO
from pathlib import Path
from typing import Any

BASELINE_REF = "b00ac59"  # the last commit of 0.1's judge, before the engine of auditor.iam
ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 29)
SHA = "packaged-sha"
Documents = dict[str, Any]  # "trust", "origin", "destination": the documents a student may change


# ------------------------------------------------------------------------------------ the class


def _from(module: str, before: str) -> Any:
    """A module of this tree, or where 0.1's flat layout had it (the worker runs in both). Decided by
    the folders of the `auditor` imported, not by trying: an editable install of this tree would
    answer for a module 0.1 does not have."""
    import auditor

    layered = (Path(auditor.__file__).parent / "domain").is_dir()
    return importlib.import_module(module if layered else before)


def _statement(effect: str = "Allow", **fields: Any) -> dict[str, Any]:
    return {"Effect": effect, **fields}


def _trust_open(docs: Documents, origin: str, destination: str) -> None:
    docs["trust"]["Statement"][0]["Principal"] = {"AWS": "*"}


def _trust_another_account(docs: Documents, origin: str, destination: str) -> None:
    docs["trust"]["Statement"][0]["Principal"] = {"AWS": [f"arn:aws:iam::{origin}:root", "999999999999"]}


def _trust_hardened(docs: Documents, origin: str, destination: str) -> None:
    docs["trust"]["Statement"][0]["Principal"] = {"AWS": f"arn:aws:iam::{origin}:role/Lambda-Assume-Roles"}


def _s3_wildcard(docs: Documents, origin: str, destination: str) -> None:
    docs["destination"]["Statement"][0]["Action"] = "s3:*"


def _deny_added(docs: Documents, origin: str, destination: str) -> None:
    docs["destination"]["Statement"].append(_statement("Deny", Action="s3:List*", Resource="*"))


def _tls_required(docs: Documents, origin: str, destination: str) -> None:
    docs["destination"]["Statement"].append(
        _statement("Deny", Action="s3:*", Resource="*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    )


def _condition_removed(docs: Documents, origin: str, destination: str) -> None:
    docs["origin"]["Statement"][0].pop("Condition")


def _logs_dropped(docs: Documents, origin: str, destination: str) -> None:
    docs["origin"]["Statement"] = docs["origin"]["Statement"][::2]


def _resource_swapped(docs: Documents, origin: str, destination: str) -> None:
    docs["origin"]["Statement"][0]["Resource"] = f"arn:aws:iam::{destination}:role/SomethingElse"


def _untouched(docs: Documents, origin: str, destination: str) -> None:
    pass


# Half the class untouched, as in a real class at any moment; the rest one change each.
CHANGES: list[Callable[[Documents, str, str], None]] = [
    *[_untouched] * 9,
    _trust_open,
    _trust_another_account,
    _trust_hardened,
    _s3_wildcard,
    _deny_added,
    _tls_required,
    _condition_removed,
    _logs_dropped,
    _resource_swapped,
]


def _as_built(expected: Any) -> Any:
    ActualLab = _from("auditor.domain.actual", "auditor.actual").ActualLab

    if hasattr(ActualLab, "as_specified"):
        return ActualLab.as_specified(expected, SHA)
    from conftest import lab_as_built  # type: ignore[import-not-found]  # 0.1's tests built it

    return lab_as_built(expected, SHA)


def a_class(labs: int) -> list[tuple[Any, Any]]:
    """(expected, actual) for each lab of a class, every lab with one typical change (or none)."""
    config = _from("auditor.domain.config", "auditor.config")
    AccountAccess, LabConfig, LabSettings = config.AccountAccess, config.LabConfig, config.LabSettings
    render = _from("auditor.domain.spec", "auditor.spec").render

    pairs = []
    for index in range(labs):
        origin, destination = f"1{index:011d}", f"2{index:011d}"
        expected = render(
            LabConfig(f"pair-{index:03d}", AccountAccess(origin), AccountAccess(destination)), LabSettings()
        )
        pairs.append((expected, _changed(_as_built(expected), CHANGES[index % len(CHANGES)])))
    return pairs


def _changed(actual: Any, change: Callable[[Documents, str, str], None]) -> Any:
    destination_role, origin_role = actual.destination_role, actual.origin_role
    (origin_name,) = origin_role.inline_policies
    (destination_name,) = destination_role.inline_policies
    docs = {
        "trust": copy.deepcopy(destination_role.trust_policy),
        "origin": copy.deepcopy(origin_role.inline_policies[origin_name]),
        "destination": copy.deepcopy(destination_role.inline_policies[destination_name]),
    }
    change(docs, origin_role.account_id, destination_role.account_id)
    changed_destination = replace(
        destination_role, trust_policy=docs["trust"], inline_policies={destination_name: docs["destination"]}
    )
    changed_origin = replace(origin_role, inline_policies={origin_name: docs["origin"]})
    if not hasattr(actual, "with_role"):  # 0.1's lab: a record of fields
        return replace(actual, destination_role=changed_destination, origin_role=changed_origin)
    return actual.with_role(changed_destination).with_role(changed_origin)


# ---------------------------------------------------------------------- 1. CPU a lab, both judges


def _a_judge() -> Callable[[Any, Any], Any]:
    """A lab's judgement by a new policy engine, which has seen no document (0.1 had no engine)."""
    judge_lab = _from("auditor.resources.compare", "auditor.compare").judge_lab

    try:
        from auditor.policy import policy_engine
    except ImportError:
        return lambda expected, actual: judge_lab(expected, actual, SHA, TODAY)  # type: ignore[call-arg]
    engine = policy_engine()
    return lambda expected, actual: judge_lab(expected, actual, SHA, TODAY, engine=engine)


def judge_cpu(labs: int) -> dict[str, Any]:
    """Judge the class twice in this process: CPU seconds a lab, cold then warm, and the verdicts."""
    class_ = a_class(labs)
    _a_judge()(*a_class(1)[0])  # imports, the action catalogue: not the judge's work
    judge = _a_judge()
    timings = []
    verdicts: Counter[str] = Counter()
    for _ in ("cold", "warm"):
        verdicts.clear()
        started = time.process_time()
        for expected, actual in class_:
            verdicts[judge(expected, actual).verdict.value] += 1
        timings.append((time.process_time() - started) / labs)
    return {"cold": timings[0], "warm": timings[1], "verdicts": dict(verdicts)}


def _worker(engine_root: Path, labs: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(engine_root),
        "--labs",
        str(labs),
    ]
    done = subprocess.run(command, cwd=engine_root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the judge of {engine_root} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _exported_baseline(into: Path) -> Path | None:
    archive = subprocess.run(
        ["git", "archive", BASELINE_REF, "auditor", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return None
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def compare_with_baseline(labs: int) -> None:
    current = _worker(ROOT, labs)
    print(f"judge {labs} labs (half untouched, half one student change each), CPU a lab:")
    print(f"  this tree: cold {current['cold'] * 1000:.1f} ms, warm {current['warm'] * 1000:.2f} ms")
    print(f"  verdicts: {current['verdicts']}")
    with tempfile.TemporaryDirectory() as scratch:
        baseline_root = _exported_baseline(Path(scratch))
        if baseline_root is None:
            print(f"  0.1's judge ({BASELINE_REF}): not in this clone's history, no ratio")
            return
        baseline = _worker(baseline_root, labs)
    print(f"  0.1's judge: cold {baseline['cold'] * 1000:.1f} ms, warm {baseline['warm'] * 1000:.2f} ms")
    print(f"  0.1's verdicts: {baseline['verdicts']}")
    print(f"  warm CPU a lab, this tree / 0.1: {current['warm'] / baseline['warm']:.2f}x")
    print(f"  cold CPU a lab, this tree / 0.1: {current['cold'] / baseline['cold']:.2f}x")


# --------------------------------------------------------------------------- 2. p99 comparison


ACTIONS = ["s3:ListAllMyBuckets", "s3:List*", "s3:*", "s3:Get*", "sts:AssumeRole", "sts:*", "logs:*", "*"]
RESOURCES = ["*", "arn:aws:s3:::b*", "arn:aws:s3:::*/x*", "arn:aws:iam::222222222222:role/*"]
CONDITIONS = [
    {"Bool": {"aws:SecureTransport": "true"}},
    {"StringLike": {"aws:UserAgent": "*AWS_Lambda_python*"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"StringEquals": {"aws:PrincipalAccount": "111111111111"}},
    {"NumericLessThan": {"s3:max-keys": "10"}},
    {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
    {"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "lab"]}},
]


def _random_statement(rng: random.Random) -> dict[str, Any]:
    found = _statement(
        rng.choice(["Allow", "Allow", "Deny"]),
        **{rng.choice(["Action", "Action", "NotAction"]): rng.sample(ACTIONS, rng.randint(1, 2))},
        Resource=rng.choice(RESOURCES),
    )
    if rng.random() < 0.6:
        found["Condition"] = rng.choice(CONDITIONS)
    return found


def random_pairs(count: int, seed: int = 11) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    rng = random.Random(seed)
    base: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [_statement(Action="s3:ListAllMyBuckets", Resource="*")],
    }
    pairs = []
    for _ in range(count):
        expected = copy.deepcopy(base)
        expected["Statement"] += [_random_statement(rng) for _ in range(rng.randint(0, 2))]
        actual = copy.deepcopy(expected)
        actual["Statement"] = [s for s in actual["Statement"] if rng.random() < 0.8]
        actual["Statement"] += [_random_statement(rng) for _ in range(rng.randint(1, 3))]
        pairs.append((expected, actual))
    return pairs


def comparison_times(count: int) -> None:
    from auditor.policy import compare_permissions, parse_policy, policy_engine

    seconds, undecided = [], 0
    for expected, actual in random_pairs(count):
        engine = policy_engine()
        started = time.perf_counter()
        diff = compare_permissions(engine, [parse_policy(expected)], [parse_policy(actual)])
        seconds.append(time.perf_counter() - started)
        undecided += not diff.decided
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    print(f"one comparison, {count} seeded random pairs, each asked of a new engine:")
    print(
        f"  p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms; "
        f"{undecided} undecided in the time limit"
    )


# ------------------------------------------------------------------------------- 3. adversarial


def adversarial_policy(statements: int, seed: int = 7) -> dict[str, Any]:
    """Hundreds of overlapping wildcard statements, each with conditions."""
    rng = random.Random(seed)
    letters = "abcdefgh"

    def glob() -> str:
        return f"*{rng.choice(letters)}*{rng.choice(letters)}*"

    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement(
                rng.choice(["Allow", "Allow", "Deny"]),
                Action=[f"s3:{glob()}", f"{rng.choice('sl')}*:{glob()}"],
                Resource=f"arn:aws:s3:::{glob()}/{glob()}",
                Condition={
                    "StringLike": {"aws:UserAgent": glob(), "s3:prefix": glob()},
                    "IpAddress": {"aws:SourceIp": f"10.{rng.randint(0, 255)}.0.0/16"},
                },
            )
            for _ in range(statements)
        ],
    }


def under_attack(statements: int) -> None:
    from auditor.policy import compare_permissions, parse_policy, policy_engine
    from auditor.resources.compare import judge_lab

    hostile = adversarial_policy(statements)
    expected, actual = a_class(1)[0]
    spec = expected.destination_role.inline_policies["LambdaS3ListBucketsPolicy"]
    engine = policy_engine()
    limit = engine.time_limit
    started = time.perf_counter()
    diff = compare_permissions(engine, [parse_policy(spec)], [parse_policy(hostile)])
    compared = time.perf_counter() - started
    role = actual.destination_role
    hostile_lab = actual.with_role(
        replace(role, inline_policies={**role.inline_policies, "Hostile": hostile})
    )
    started = time.perf_counter()
    verdict = judge_lab(expected, hostile_lab, SHA, TODAY, engine=policy_engine()).verdict.value
    judged = time.perf_counter() - started
    outcome = "decided" if diff.decided else "could not be decided in time"
    print(f"adversarial policy of {statements} overlapping wildcard statements with conditions:")
    print(f"  one comparison: {outcome} after {compared:.2f} s (time limit {limit:.0f} s)")
    print(f"  the whole lab judged in {judged:.2f} s, verdict {verdict} (one budget of the limit per lab)")
    print(f"  comparison time / limit: {compared / limit:.2f}")


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labs", type=int, default=120)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--statements", type=int, default=300)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        sys.path[:0] = [str(args.worker), str(args.worker / "tests")]
        _from("auditor.common.logs", "auditor.logs").configure_logging("error")
        print(json.dumps(judge_cpu(args.labs)))
        return
    sys.path.insert(0, str(ROOT))
    from auditor.common.logs import configure_logging

    configure_logging("error")
    compare_with_baseline(args.labs)
    comparison_times(args.pairs)
    under_attack(args.statements)


if __name__ == "__main__":
    main()
