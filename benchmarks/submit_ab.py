"""A/B of `runlog submit-batch` between runlog source trees, against the aws CLI.

    python benchmarks/submit_ab.py 100000 /path/to/old/tree /path/to/this/tree [--repeat 7]

Starts moto's S3 and the emulator as batch_bench.py does (a settings file of RUNS runs in
S3, its inputs absent unless --inputs), then, round by round, times `aws omics
start-run-batch` and each tree's `runlog submit-batch` (PYTHONPATH set to the tree; a tree
is a directory holding `runlog/`, e.g. from `git archive COMMIT runlog schema | tar -x -C
DIR`, or `.` for this checkout), one after the other in an order that turns by one each
round (what runs after what is not always the same), each with a new cohort (a settings
file of its own: no command finds another's blob or rows), all into one ledger. The first
round warms up and is not counted. Prints each round, then the medians and each one's ratio
to the aws CLI's. Environment variables for a tree's runs only: TREE:NAME=VALUE."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from batch_bench import BUCKET
from harness import aws_cli, cohort_world, timed


def tree_and_env(spec: str) -> tuple[str, dict[str, str]]:
    """A tree given as PATH or PATH:NAME=VALUE[:NAME=VALUE...]; the path made absolute (the
    commands run in the world's own directory)."""
    path, *pairs = spec.split(":")
    env = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise SystemExit(f"{spec!r}: give a tree as PATH or PATH:NAME=VALUE")
        env[name] = value
    return os.path.abspath(path), env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int)
    parser.add_argument("trees", nargs="+", help="runlog source trees (PATH or PATH:NAME=VALUE)")
    parser.add_argument("--repeat", type=int, default=5, help="counted rounds (after one to warm up)")
    parser.add_argument("--inputs", action="store_true", help="put every input the cohort names in S3")
    args = parser.parse_args(argv)
    trees = [tree_and_env(spec) for spec in args.trees]
    for path, _ in trees:  # compiled once, as an installed runlog is (pip compiles at install)
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(path, "runlog")], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    aws = aws_cli()
    names = ["aws"] + args.trees
    seconds: dict[str, list[float]] = {name: [] for name in names}
    with cohort_world(BUCKET, args.runs, inputs=args.inputs) as world:
        commands = list(zip(names, [None, *trees], strict=True))
        for round_ in range(args.repeat + 1):
            turn = round_ % len(commands)
            for name, tree in commands[turn:] + commands[:turn]:
                request = world.fresh_request(f"ab{round_}-{names.index(name)}")
                env = {k: v for k, v in world.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
                if tree is None:
                    command = [aws, "omics", "start-run-batch", *request]
                else:
                    command = [sys.executable, "-m", "runlog", "submit-batch", *request, "--resolve-timeout", "300"]
                    env.update(tree[1], PYTHONPATH=tree[0])
                _, usage = timed(command, env, world.work)
                if round_:
                    seconds[name].append(usage["seconds"])
            if round_:
                print(f"round {round_}: " + ", ".join(f"{name} {seconds[name][-1]:.3f} s" for name in names), flush=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{args.runs} runs, medians of {args.repeat} round(s), load average {os.getloadavg()[0]:.2f}:")
    for name in names:
        print(f"  {name}: {medians[name]:.3f} s, {medians[name] / medians['aws']:.2f}x the aws CLI")
    return 0


if __name__ == "__main__":
    sys.exit(main())
