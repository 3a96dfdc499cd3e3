"""Where `runlog submit-batch`'s time goes: before StartRunBatch is sent, the call, and after it.

    python benchmarks/submit_phases.py                      # 100 000 runs, 3 repeats
    python benchmarks/submit_phases.py --runs 300 --repeat 1   # the CI smoke

The same set-up as batch_bench.py (moto's S3 server, the emulator in this process reading the
s3UriSettings file from moto), and the same request: a new cohort's settings file each repeat
(`--resubmit`: the same file every time). Each repeat times `aws omics
start-run-batch`, then `runlog submit-batch` run through a small wrapper that notes, on
time.perf_counter's clock of the runlog process, when botocore starts and ends the
StartRunBatch call and when the process ends. That splits runlog's wall time into

  before  what runlog does before it sends (start-up, reading and checking the settings file,
          the inputs' identities, git, the attempt committed);
  call    StartRunBatch itself (the emulator reading the same file, as for the aws CLI);
  after   what follows the answer (the batch record written, the answer printed).

`runlog - after` is what runlog would take if nothing at all were written after the answer:
a bound on what any change to how the batch record is written can give (docs/performance.md,
"submit-batch: what the record's write costs, and the bound without it"). Ratios are to the
aws CLI measured in the same run, medians."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from harness import aws_cli, cohort_world, timed

BUCKET = "bench-phases"

# Runs `python -m runlog ARGS...` and writes {"call": [start, end], "end": t} (seconds on
# time.perf_counter's clock, from the wrapper's first line) to the file named first.
WRAPPER = """import atexit, importlib.abc, importlib.util, json, runpy, sys, time
started = time.perf_counter()
out, sys.argv = sys.argv[1], ["runlog", *sys.argv[2:]]
marks = {}
def patch(module):
    call = module.BaseClient._make_api_call
    def timed_call(self, operation, params):
        begun = time.perf_counter() - started
        try:
            return call(self, operation, params)
        finally:
            if operation == "StartRunBatch":
                marks["call"] = [begun, time.perf_counter() - started]
    module.BaseClient._make_api_call = timed_call
class Patcher(importlib.abc.MetaPathFinder):
    # botocore.client patched when runlog imports it, not imported here first: runlog's start
    # (its git capture forked before botocore's import, to run beside it) stays as it is
    def find_spec(self, name, path, target=None):
        if name != "botocore.client":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Patcher())
def write():
    marks["end"] = time.perf_counter() - started
    with open(out, "w") as f:
        json.dump(marks, f)
atexit.register(write)
runpy.run_module("runlog", run_name="__main__")
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="run settings in the batch (default 100 000)")
    parser.add_argument("--repeat", type=int, default=3, help="submissions by each tool")
    parser.add_argument("--inputs", action="store_true",
                        help="put each run's input (and the references) in S3 first, so that runlog lists and records "
                             "real identities; without it they are missing and recorded as not found")
    parser.add_argument("--resubmit", action="store_true",
                        help="submit the same settings file in every repeat (runlog then finds its per-run digests "
                             "in the ledger from the first); without it each repeat submits a new cohort, as labs do")
    args = parser.parse_args(argv)


    aws = aws_cli()
    rows: dict[str, list[float]] = {"aws": [], "runlog": [], "before": [], "call": [], "after": []}
    with cohort_world(BUCKET, args.runs, inputs=args.inputs, ledger=".runlog/ledger.db") as world:
        request, work, env = world.request, world.work, world.env
        marks_file = work / "marks.json"
        for repeat in range(args.repeat):
            if not args.resubmit and repeat:  # a new cohort each repeat (the first is the world's own)
                request = world.fresh_request(f"r{repeat}")
            _, usage = timed([aws, "omics", "start-run-batch", *request], env, work)
            rows["aws"].append(usage["seconds"])
            _, usage = timed([sys.executable, "-c", WRAPPER, str(marks_file), "submit-batch", *request,
                              "--resolve-timeout", "300"], env, work)
            marks = json.loads(marks_file.read_text())
            begun, answered = marks["call"]
            # the wrapper's clock starts after the interpreter's own start-up: that part is "before"
            before = usage["seconds"] - (marks["end"] - begun)
            rows["runlog"].append(usage["seconds"])
            rows["before"].append(before)
            rows["call"].append(answered - begun)
            rows["after"].append(marks["end"] - answered)
    median = {name: statistics.median(values) for name, values in rows.items()}
    baseline = median["aws"]

    def line(name: str, seconds: float, ratio: bool = False) -> str:
        return f"| {name} | {seconds:.2f} s | " + (f"{seconds / baseline:.2f} |" if ratio else "- |")

    inputs = "inputs in S3" if args.inputs else "inputs absent from S3 (--inputs puts them there)"
    files = "the same file each repeat (--resubmit)" if args.resubmit else "a new cohort's file each repeat"
    print(f"{args.runs} runs from an s3UriSettings file ({inputs}; {files}), {args.repeat} repeat(s), medians; load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("| | wall time | ratio to the aws CLI |")
    print("|---|---|---|")
    print(line("aws omics start-run-batch", baseline, True))
    print(line("runlog submit-batch", median["runlog"], True))
    print(line("  before StartRunBatch is sent", median["before"]))
    print(line("  StartRunBatch", median["call"]))
    print(line("  after the answer (the batch record written)", median["after"]))
    bound = statistics.median(r - a for r, a in zip(rows["runlog"], rows["after"], strict=True))
    print(line("runlog without what follows the answer (a bound)", bound, True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
