"""runlog's benchmarks: every number is a ratio against a baseline measured in the same run.

    python benchmarks/run.py                      # ledgers of 100 000 and 1 000 000 records
    python benchmarks/run.py --sizes 20000 --repeat 5   # a quick look
    python benchmarks/run.py --skip-submit --sizes "" --batch-members 100000 --repeat 5   # cohorts

It prints one table (operation, runlog, baseline, ratio, target). Timings are medians of
whole-process wall times; with --batch-members, a second table gives the same commands' CPU
times (getrusage of each child), the steadier measure on a shared machine. Ledgers are built once into --workdir (default .benchmarks/)
with benchmarks/make_ledger.py and reused by later runs.

  submit      `runlog submit` vs `aws omics start-run` for each of the five seed examples (the
              AWS CLI documentation's, verbatim): same local emulator, resolution on, the
              examples' s3:// inputs served by moto's S3 server on loopback
  log/show/…  read commands on a big ledger vs the bare interpreter running `import click`
  verify all  `runlog verify` of a whole ledger, in records per second (target >= 20 000)
  cohorts     with --batch-members N: log, show, diff on a ledger holding two batches of N
              member runs each (make_ledger.build_batches), vs `import click`
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_ledger import build, build_batches, build_once  # noqa: E402

# The S3 objects the seed examples name (runlog's resolution HEADs them; moto serves them).
S3_INPUTS = [
    "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
    "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
    "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
    "s3://healthomics-output-bucket-demo/input/samplesheet.csv",
    "s3://healthomics-output-bucket-demo/reference/genes.gtf",
    "s3://healthomics-output-bucket-demo/reference/genome.fa",
]


def bench_env(**extra: str) -> dict:
    """The environment for timed commands. PYTHONDONTWRITEBYTECODE is left out: an installed
    runlog, like the aws CLI, runs from compiled bytecode (pip compiles it at install; an
    editable install compiles once, in the warm-up run), not from source every time."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def wall(cmd: list[str], env: dict, cwd: Path | None = None) -> float:
    return timed(cmd, env, cwd)[0]


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, float]:
    """(wall time, CPU time: user + system of the child, from getrusage) of one run."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def compare_cpu(a: list[str], b: list[str], env: dict, repeat: int) -> tuple[float, float, float, float]:
    """compare's medians of wall time, then of CPU time (steadier on a shared machine)."""
    timed(a, env), timed(b, env)  # warm the file cache
    runs_a, runs_b = [], []
    for _ in range(repeat):
        runs_a.append(timed(a, env))
        runs_b.append(timed(b, env))
    return (statistics.median(w for w, _ in runs_a), statistics.median(w for w, _ in runs_b),
            statistics.median(c for _, c in runs_a), statistics.median(c for _, c in runs_b))


def compare(a: list[str], b: list[str], env: dict, repeat: int, cwd: Path | None = None) -> tuple[float, float]:
    """Medians of a and b, run alternately so drift in the machine's load hits both alike."""
    wall(a, env, cwd), wall(b, env, cwd)  # warm the file cache
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(wall(a, env, cwd))
        times_b.append(wall(b, env, cwd))
    return statistics.median(times_a), statistics.median(times_b)


def runlog_cmd() -> list[str]:
    found = shutil.which("runlog")
    return [found] if found else [sys.executable, "-m", "runlog"]


def _moto_s3() -> tuple[Any, str]:
    """moto's S3 server on loopback (the real S3 protocol over HTTP), holding S3_INPUTS."""
    import logging
    import urllib.request

    import botocore.session
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server: Any = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST")).close()
    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
        aws_secret_access_key="bench")
    for uri in S3_INPUTS:
        bucket, _, key = uri[5:].partition("/")
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=f"bench {key}\n".encode())
    return server, endpoint


def _seed_repo(repo: Path) -> list[tuple[str, Path, list[str]]]:
    """A committed analysis repository with one directory per seed example (the first and
    the fifth read different workflow-inputs.json); returns (label, directory, arguments)."""
    from runlog.emulator.seed import EXAMPLES, example_args

    repo.mkdir()
    out = []
    for number, (title, command, inputs) in enumerate(EXAMPLES, 1):
        where = repo / f"example{number}"
        where.mkdir()
        if inputs is not None:
            (where / "workflow-inputs.json").write_text(inputs)
        (where / "README.md").write_text(title + "\n")
        out.append((f"{number} {title.lower()}", where, example_args(command)))
    for args in (["init", "-q"], ["add", "."], ["-c", "user.email=b@example.org", "-c", "user.name=bench",
                                                 "commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return out


def bench_submit(repeat: int, rows: list, examples: list[int] | None = None) -> None:
    """`runlog submit` vs `aws omics start-run` for each of the five seed examples, verbatim:
    same emulator, resolution on, the examples' s3:// inputs served by moto's S3 server."""
    from runlog.emulator import Emulator

    aws = shutil.which("aws")
    if not aws:
        rows.append(("submit vs aws omics start-run", None, None, None, "aws CLI not installed (pip install awscli)"))
        return
    server, s3_endpoint = _moto_s3()
    try:
        with Emulator(port=0) as emu, tempfile.TemporaryDirectory() as tmp:
            env = bench_env(AWS_ENDPOINT_URL=emu.endpoint_url, AWS_ENDPOINT_URL_S3=s3_endpoint,
                            AWS_DISABLE_HOST_PREFIX_INJECTION="true", AWS_ACCESS_KEY_ID="bench",
                            AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-west-2",
                            AWS_CONFIG_FILE=str(Path(tmp) / "none"), AWS_SHARED_CREDENTIALS_FILE=str(Path(tmp) / "none"),
                            AWS_EC2_METADATA_DISABLED="true", RUNLOG_LEDGER=str(Path(tmp) / "ledger.db"), AWS_PAGER="")
            for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL_OMICS",
                        "AWS_ENDPOINT_URL_STS", "AWS_SESSION_TOKEN"):
                env.pop(var, None)
            for number, (label, where, args) in enumerate(_seed_repo(Path(tmp) / "analysis"), 1):
                if examples and number not in examples:
                    continue
                ours, theirs = compare([*runlog_cmd(), "submit", *args], [aws, "omics", "start-run", *args],
                                       env, repeat, cwd=where)
                rows.append((f"submit, example {label}", ours, theirs, ours / theirs,
                             "<= 0.75 x aws omics start-run"))
    finally:
        server.stop()


def bench_ledger(size: int, workdir: Path, repeat: int, rows: list) -> None:
    path = build_once(workdir / f"ledger-{size}.db", lambda at: build(at, size), what=f"a ledger of {size} records")
    from runlog.ledger import Ledger

    Ledger.open(path).close()  # a ledger built by an older runlog: migrated now, as the first write would
    env = bench_env(RUNLOG_LEDGER=str(path), NO_COLOR="1")
    baseline = [sys.executable, "-c", "import click"]
    import sqlite3

    conn = sqlite3.connect(path)
    middle = conn.execute("SELECT run_id FROM records WHERE run_id IS NOT NULL AND seq > ? LIMIT 1",
                          (size // 2,)).fetchone()[0]
    conn.close()
    from runlog.cli import COMMANDS

    operations = [("log -n 20", ["log", "-n", "20"]), ("show @1", ["show", "@1"]),
                  ("show RUN_ID", ["show", middle]), ("verify @1", ["verify", "@1"])]
    if "diff" in COMMANDS:
        operations.append(("diff @1 @2", ["diff", "@1", "@2"]))
    for label, args in operations:
        ours, base = compare([*runlog_cmd(), *args], baseline, env, repeat)
        rows.append((f"{label} ({size:,} records)", ours, base, ours / base, "<= 2 x import click"))
    if size <= 200_000:
        times = []
        for _ in range(max(1, min(repeat, 5))):  # the median of up to five whole verifies
            started = time.perf_counter()
            subprocess.run([*runlog_cmd(), "verify"], env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
        elapsed = statistics.median(times)
        rows.append((f"verify all ({size:,} records)", elapsed, None, size / elapsed, ">= 20 000 records/s"))


def cohort_ledger(members: int, workdir: Path, records: int = 2000) -> Path:
    """A ledger of `records` runs and two batches of `members` member runs each, built once."""
    return build_once(workdir / f"cohorts-{members}.db", lambda at: build(at, records),
                      lambda at: build_batches(at, members), what=f"a ledger with two batches of {members} members")


def bench_cohorts(members: int, workdir: Path, repeat: int, rows: list) -> None:
    """The read commands on a ledger holding two cohorts of `members` runs (issue 14)."""
    import sqlite3

    from runlog.ledger import Ledger

    path = cohort_ledger(members, workdir)
    Ledger.open(path).close()  # migrated now, as the first write would
    conn = sqlite3.connect(path)
    first, second, rerun = (row[0] for row in conn.execute(
        "SELECT batch_id FROM records WHERE kind = 'batch' ORDER BY seq DESC LIMIT 3").fetchall()[::-1])
    run_a, run_b = (row[0] for row in conn.execute(
        "SELECT run_id FROM records WHERE kind = 'member' AND batch_id = ? AND run_id IS NOT NULL "
        "AND seq > (SELECT min(seq) + ? FROM records WHERE batch_id = ?) LIMIT 2", (first, members // 2, first)))
    conn.close()
    env = bench_env(RUNLOG_LEDGER=str(path), NO_COLOR="1")
    baseline = [sys.executable, "-c", "import click"]
    operations = [("log -n 20", ["log", "-n", "20"]), ("log --batch B -n 20", ["log", "--batch", first, "-n", "20"]),
                  ("show B", ["show", first]), ("show MEMBER (run id)", ["show", run_a]),
                  ("show @1 (a member)", ["show", "@1"]), ("diff MEMBER MEMBER", ["diff", run_a, run_b]),
                  ("diff B1 B2 (settings files differ)", ["diff", first, second]),
                  ("diff B1 B3 (the same settings file)", ["diff", first, rerun]), ("verify B", ["verify", first])]
    for label, args in operations:
        ours, base, ours_cpu, base_cpu = compare_cpu([*runlog_cmd(), *args], baseline, env, repeat)
        rows.append((f"{label} (2 x {members:,} members)", ours, base, ours / base, "<= 2 x import click"))
        CPU_ROWS.append((f"{label} (2 x {members:,} members)", ours_cpu, base_cpu))


CPU_ROWS: list[tuple[str, float, float]] = []  # (operation, runlog CPU, import click CPU), for cohorts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="runlog benchmarks (ratios against same-run baselines)")
    parser.add_argument("--sizes", default="100000,1000000", help="ledger sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per command")
    parser.add_argument("--workdir", type=Path, default=Path(".benchmarks"), help="where ledgers are kept")
    parser.add_argument("--skip-submit", action="store_true")
    parser.add_argument("--examples", default="", help="seed examples to submit (e.g. 1,5; default all five)")
    parser.add_argument("--skip-ledger", action="store_true", help="only the submit comparison")
    parser.add_argument("--batch-members", type=int, default=0,
                        help="also time log/show/diff with two batches of this many members (0: not)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows: list = []
    if not args.skip_submit:
        bench_submit(args.repeat, rows, [int(n) for n in args.examples.split(",") if n])
    sizes = [] if args.skip_ledger else [int(s) for s in args.sizes.split(",") if s]
    for size in sizes:
        bench_ledger(size, args.workdir, args.repeat, rows)
    if args.batch_members and not args.skip_ledger:
        bench_cohorts(args.batch_members, args.workdir, args.repeat, rows)
    print("| operation | runlog | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for label, ours, base, ratio, target in rows:
        if ours is None:
            print(f"| {label} | - | - | - | {target} |")
        elif base is None:
            print(f"| {label} | {ours:.3f} s | - | {ratio:,.0f} records/s | {target} |")
        else:
            print(f"| {label} | {ours * 1000:.0f} ms | {base * 1000:.0f} ms | {ratio:.2f} | {target} |")
    if CPU_ROWS:
        print(f"\nCPU time (getrusage of each child), medians; load average {os.getloadavg()[0]:.1f}:\n")
        print("| operation | runlog CPU | import click CPU | CPU ratio |")
        print("|---|---|---|---|")
        for label, ours, base in CPU_ROWS:
            print(f"| {label} | {ours * 1000:.0f} ms | {base * 1000:.0f} ms | {ours / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
