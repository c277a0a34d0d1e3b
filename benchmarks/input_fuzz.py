"""Feed `qwenctl plan` (and `detect`) hardware descriptions a user could write or damage, and count what goes wrong.

    python benchmarks/input_fuzz.py profiles  [--seed N] [--cases N] [--pairs N]
    python benchmarks/input_fuzz.py snapshots [--seed N] [--cases N] [--pairs N]

profiles: every field of every shipped profile (profiles/*.toml) deleted or set to each of 20 odd values (0, -1,
1e30, "1e400 GB/s", NaN, infinity, lists, tables, ...), or with --pairs, two changes to one profile at once that each
plan alone. snapshots: every answer of every captured machine (tests/fixtures/captures) deleted, set to an odd value (2**64, NaN, "NotSupported", ...), or, for a text, cut short,
a line dropped, doubled or its numbers replaced; with --pairs, two answers of one machine missing, NotSupported, None
or 0 at once. Each case runs `plan` (snapshots: and `detect`) in this process.

A case may plan (exit 0) or be refused in one line (3, bad input; 5, nothing fits); what must not happen is the
last guard's "internal error" (exit 70) or a case that takes seconds (one still running after 20 s is stopped):
each is printed with the case, whose file is kept as failed-N-*. The last line
counts the exit statuses. docs/detect.md ("Bad input") quotes what this found.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from qwenctl.cli import cli  # noqa: E402

PROFILE_VALUES: list[Any] = [0, -1, 1, 1e30, -1e30, 0.5, "x", "", "0 GB", "-5 GiB", "1e400 GB/s", "16 GiB", "999999 TB",
                             True, [], [1], {}, "nan GB/s", math.nan, math.inf]
SNAPSHOT_VALUES: list[Any] = [0, -1, 2**64, 1e308, math.nan, "x", "", None, True, [], {}, "NotSupported", [0, 0], -2**63]
DELETE = object()
PAIR_VALUES: list[Any] = [DELETE, "NotSupported", None, 0]  # snapshots --pairs: an answer missing, refused or empty
SLOW_S = 2.0
HUNG_S = 20  # a case still running then is stopped (SIGALRM) and counted: 2**64 GPUs counted ran for hours


class Hung(Exception):
    pass


def _stop(signum, frame):
    raise Hung(f"still running after {HUNG_S} s")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_text(table: dict[str, Any], prefix: str = "") -> str:
    """A profile as TOML again: scalars first, then tables and arrays of tables."""
    nested = {k: v for k, v in table.items()
              if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))}
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items() if k not in nested]
    for k, v in nested.items():
        name = prefix + json.dumps(k)
        for item in (v if isinstance(v, list) else [v]):
            lines += [f"\n[[{name}]]" if isinstance(v, list) else f"\n[{name}]", toml_text(item, name + ".")]
    return "\n".join(lines)


def paths(node: Any, at: tuple = ()) -> list[tuple]:
    """Every key or index below ``node``, as a path from it."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out = []
    for k, v in items:
        out.append(at + (k,))
        out += paths(v, at + (k,))
    return out


def changed(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def text_variants(text: str, draw: random.Random) -> list[str]:
    """A captured text cut short, a line dropped, doubled, its colon lost or its numbers replaced."""
    lines = text.splitlines()
    i = draw.randrange(len(lines)) if lines else 0
    out = [text[: draw.randrange(len(text) + 1)], "\x00\xff garbage"]
    if lines:
        odd = re.sub(r"\d+", lambda m: draw.choice(["0", "-1", "99999999999999999999999", "1e400", "nan", ""]), lines[i])
        out += ["\n".join(lines[:i] + lines[i + 1:]), "\n".join(lines[:i] + [odd] + lines[i + 1:]),
                "\n".join(lines[:i] + [lines[i].replace(":", "", 1)] + lines[i + 1:]), text + "\n" + lines[i]]
    return out


def profile_changes() -> list[tuple[str, dict, tuple, Any]]:
    """(profile, its document, a path in it, the value it gets) for every field and odd value."""
    changes = []
    for f in sorted((ROOT / "profiles").glob("*.toml")):
        doc = tomllib.loads(f.read_text())
        changes += [(f.stem, doc, path, v) for path in paths(doc) if path[0] != "sources" for v in [DELETE, *PROFILE_VALUES]]
    return changes


def profile_cases(draw: random.Random) -> list[tuple[str, str]]:
    cases = [(name, toml_text(changed(doc, path, v))) for name, doc, path, v in profile_changes()]
    draw.shuffle(cases)
    return cases


def profile_pairs(draw: random.Random, count: int, plans_alone: Any) -> list[tuple[str, str]]:
    """``count`` cases of two changes to one profile at once, each a change that plans when made alone
    (``plans_alone(name, text)``): fields odd together (a GPU's memory and its bandwidth, the cores and the
    threads) that each pass alone."""
    by_profile: dict[str, list] = {}
    for name, doc, path, v in profile_changes():
        if plans_alone(name, toml_text(changed(doc, path, v))):
            by_profile.setdefault(name, []).append((doc, path, v))
    names = sorted(n for n, passing in by_profile.items() if len(passing) > 1)
    cases: list[tuple[str, str]] = []
    while names and len(cases) < count:
        name = draw.choice(names)
        (doc, one, a), (_, two, b) = draw.sample(by_profile[name], 2)
        if one[: len(two)] == two or two[: len(one)] == one:  # one field inside the other
            continue
        try:
            cases.append((name, toml_text(changed(changed(doc, one, a), two, b))))
        except (IndexError, KeyError):  # the first change deleted an array's item: the second's index moved
            continue
    return cases


def snapshot_cases(draw: random.Random) -> list[tuple[str, Any]]:
    """(capture, a thunk making the changed document): texts are varied when the case runs, not all held at once."""
    cases = []
    for f in sorted((ROOT / "tests" / "fixtures" / "captures").glob("*.json")):
        doc = json.loads(f.read_text())
        answers = {k: doc[k] for k in ("files", "commands", "nvml", "platform", "env", "disk", "psutil", "python") if k in doc}
        for path in paths(answers):
            value = copy.deepcopy(answers)
            for k in path:
                value = value[k]
            for v in [DELETE, *SNAPSHOT_VALUES]:
                cases.append((f.stem, lambda doc=doc, path=path, v=v: changed(doc, path, v)))
            if isinstance(value, str) and len(value) > 20:
                for n in range(6):
                    seed = draw.random()
                    cases.append((f.stem, lambda doc=doc, path=path, value=value, n=n, seed=seed:
                                  changed(doc, path, text_variants(value, random.Random(seed))[n % 6])))
    draw.shuffle(cases)
    return cases


def snapshot_pairs(draw: random.Random, count: int) -> list[tuple[str, Any]]:
    """``count`` cases of two answers of one captured machine missing at once, or NotSupported, None or 0: a partial
    probe (a container without /sys, a driver that answers some NVML queries) where each answer alone degrades."""
    answers = []
    for f in sorted((ROOT / "tests" / "fixtures" / "captures").glob("*.json")):
        doc = json.loads(f.read_text())
        found = {k: doc[k] for k in ("files", "commands", "nvml", "platform", "env", "disk", "psutil", "python") if k in doc}
        answers.append((f.stem, doc, paths(found)))
    cases: list[tuple[str, Any]] = []
    while len(cases) < count:
        name, doc, where = draw.choice(answers)
        one, two = draw.sample(where, 2)
        if one[: len(two)] == two or two[: len(one)] == one:
            continue
        a, b = draw.choice(PAIR_VALUES), draw.choice(PAIR_VALUES)
        cases.append((name, lambda doc=doc, one=one, two=two, a=a, b=b: changed(changed(doc, one, a), two, b)))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("profiles", "snapshots"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, help="run this many of them (all by default)")
    ap.add_argument("--pairs", type=int, default=0, help="this many cases of two changes at once: profiles, each a change that plans alone (every single change runs "
                         "first); snapshots, two answers missing, NotSupported, None or 0")
    args = ap.parse_args()
    draw = random.Random(args.seed)
    runner, statuses, failures = CliRunner(), Counter(), 0
    scratch = Path("/tmp") / f"qwenctl-input-fuzz-{args.what}"
    scratch.mkdir(exist_ok=True)
    signal.signal(signal.SIGALRM, _stop)
    if args.what == "profiles" and args.pairs:
        def plans_alone(name: str, text: str) -> bool:
            f = scratch / f"{name}.toml"
            f.write_text(text)
            return runner.invoke(cli, ["plan", "--profile", str(f)]).exit_code == 0

        cases = profile_pairs(draw, args.pairs, plans_alone)
    elif args.pairs:
        cases = snapshot_pairs(draw, args.pairs)
    else:
        cases = profile_cases(draw) if args.what == "profiles" else snapshot_cases(draw)
    for name, made in cases[: args.cases]:
        if args.what == "profiles":
            f = scratch / f"{name}.toml"
            f.write_text(made)
            commands = [["plan", "--profile", str(f)]]
        else:
            f = scratch / f"{name}.json"
            f.write_text(json.dumps(made()))
            commands = [["plan", "--snapshot", str(f)], ["detect", "--snapshot", str(f)]]
        for command in commands:
            start = time.perf_counter()
            signal.alarm(HUNG_S)
            result = runner.invoke(cli, command)
            signal.alarm(0)
            seconds = time.perf_counter() - start
            status = 70 if result.exception and not isinstance(result.exception, SystemExit) else result.exit_code
            statuses[status] += 1
            if status == 70 or seconds > SLOW_S:
                failures += 1
                last = (result.output.strip().splitlines() or [repr(result.exception)])[-1][:160]
                what = last if status == 70 else f"took {seconds:.1f} s"
                kept = f.rename(scratch / f"failed-{failures}-{f.name}")
                print(f"{name}: {command[0]} {what}\n  {kept}", flush=True)
    print(f"{sum(statuses.values())} runs on {min(len(cases), args.cases or len(cases))} {args.what}, exit statuses "
          f"{dict(sorted(statuses.items()))}: {failures} internal errors or slow")


if __name__ == "__main__":
    main()
