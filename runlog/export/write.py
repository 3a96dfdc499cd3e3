"""Writing exports: each format to its place, atomically (a staging directory beside the
target, renamed into place), never over an existing output without `force`.

The target itself is never followed: a symlink there is refused, with or without `force`
(the directories above it are resolved as the system does: you chose that path). `force`
replaces only a regular file or a directory, never a device, FIFO or socket, and never a
directory that contains the current directory. Nothing is written outside the target but
the staging directory beside it, which is removed whatever happens."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from runlog.config import printable
from runlog.errors import UsageError
from runlog.export.cohort import BatchFacts
from runlog.export.terms import RunFacts, check_licence

FILE_FORMATS = {"bco": "bco.json", "prov-json": "prov.json", "prov-n": "prov.provn"}


def render(runs: list[RunFacts], fmt: str, *, usability=None, license=None, title=None, authors=(),
           publisher=None, batches: Sequence[BatchFacts] = ()) -> dict[str, str]:
    """The files of a single-file or bundle format: relative path -> text. `batches` are the
    cohorts among the runs (their members are among `runs`)."""
    if fmt == "bco":
        return dict(bco_files(runs, usability=usability, license=license, authors=authors, batches=batches))
    if fmt == "prov-json":
        from runlog.export.prov import prov_json

        return {"prov.json": prov_json(runs, authors=list(authors), batches=batches)}
    if fmt == "prov-n":
        from runlog.export.prov import prov_n

        return {"prov.provn": prov_n(runs, authors=list(authors), batches=batches)}
    if fmt == "methods":
        from runlog.export.methods import files

        return {f"methods/{name}": text
                for name, text in files(runs, title=title, authors=list(authors), license=license,
                                        batches=batches).items()}
    raise UsageError(f"unknown format {fmt!r}")


def bco_files(runs: list[RunFacts], *, usability=None, license=None, authors: Sequence[dict] = (),
              batches: Sequence[BatchFacts] = ()) -> Iterator[tuple[str, str]]:
    """(path, text) of each BioCompute Object, built one at a time so that a cohort's BCOs
    can be written and dropped one by one: `bco.json` for a single run, else
    `bco/<run id>.bco.json` per run."""
    from runlog.export.bco import build
    from runlog.export.jsontext import pretty
    from runlog.export.terms import input_ids

    ids = input_ids(runs)
    of_batch = {m.address: b for b in batches for m in b.members}

    def text(group):
        bco = build(group, usability=usability, license=license, authors=list(authors), ids=ids,
                    batch=of_batch.get(group[0].address))
        return pretty(bco) + "\n"

    # one BCO per run: a BCO describes one execution of a pipeline; a batch member whose
    # submission failed was never executed, so it has none (the cohort's tables list it)
    described = [r for r in runs if r.ran or r.address not in of_batch]
    if len(described) == 1 and not batches:
        yield "bco.json", text(described)
        return
    for name, run in zip(bco_names(described), described, strict=True):
        yield f"bco/{name}.bco.json", text([run])


def bco_names(runs: list[RunFacts]) -> list[str]:
    """File names for one BCO per run: the run id, made unique (run ids are reused after a
    run is deleted) with the record's address."""
    from collections import Counter

    names = [run.run_id or f"attempt-{run.address[:12]}" for run in runs]
    counts = Counter(names)
    return [name if counts[name] == 1 else f"{name}-{run.address[:12]}" for name, run in zip(names, runs, strict=True)]


def warnings(runs: list[RunFacts], fmt: str, license: str | None, batches: Sequence[BatchFacts] = ()) -> list[str]:
    """What a user should know about an export that was written anyway (one line per batch
    for its members, however many)."""
    out = []
    if not license and fmt in ("ro-crate", "all", "bco", "methods"):
        out.append("no licence given (`license`, or license in .runlog.toml): the export states none, "
                   "and repositories such as Zenodo will ask for one")
    for batch in batches:
        unfinished = [m for m in batch.members if not m.finished]
        if unfinished or batch.unrecorded or not batch.finished:
            out.append(f"batch {batch.batch_id} was {batch.status} when exported with {len(unfinished)} run(s) not "
                       f"finished and {batch.unrecorded} run setting(s) not yet recorded: counts, statuses and "
                       f"outputs are as of export time; `runlog refresh {batch.batch_id}` and export again once "
                       "it ends")
        if batch.settings_changed:
            out.append(f"batch {batch.batch_id}: its settings file was found changed after it was pinned: the "
                       "export states the pinned settings, and its methods paragraph says the runs may not have "
                       "received them")
    covered = {m.address for b in batches for m in b.members}
    for run in runs:
        if run.address in covered:
            continue
        if not run.finished:
            out.append(f"run {run.run_id} was {run.status} when exported (not finished): its status, times and "
                       "outputs are as of export time; `refresh()` and export again once it ends")
    return out


def export(runs: list[RunFacts], fmt: str, target: Path, *, force: bool = False, license: str | None = None,
           usability: str | None = None, title: str | None = None, authors: Sequence[dict] = (),
           publisher: dict | None = None, batches: Sequence[BatchFacts] = ()) -> list[Path]:
    """Write `fmt` to `target`; returns the files written."""
    license = check_licence(license)
    target = target.expanduser()
    shown = printable(target)
    existing = _existing(target, force)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {shown}: directory {printable(parent)} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {shown}: directory {printable(parent)} is not writable")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    except OSError as exc:
        raise UsageError(f"cannot write {shown}: cannot create files in {printable(parent)} "
                         f"({exc.strerror or exc}); give `path` a path in an ordinary directory",
                         option="path") from None
    try:
        built = staging / target.name
        if fmt == "bco":
            files = bco_files(runs, usability=usability, license=license, authors=authors, batches=batches)
            for name, text in files:
                if name == "bco.json":  # one run: one file
                    built.write_text(text, encoding="utf-8")
                    continue
                if not built.exists():  # several BCOs: a directory of them, each written and dropped
                    built.mkdir()
                (built / Path(name).name).write_text(text, encoding="utf-8")
            if not built.exists():  # a cohort none of whose runs started: no BCO, an empty directory
                built.mkdir()
        elif fmt in FILE_FORMATS:
            (text,) = render(runs, fmt, usability=usability, license=license, authors=authors,
                             batches=batches).values()
            built.write_text(text, encoding="utf-8")
        elif fmt == "methods":
            built.mkdir()
            for name, text in render(runs, fmt, title=title, authors=authors, license=license,
                                     batches=batches).items():
                (built / Path(name).name).write_text(text, encoding="utf-8")
        elif fmt == "ro-crate":
            from runlog.export import rocrate

            crate = rocrate.build(runs, license=license, title=title, authors=authors, publisher=publisher,
                                  batches=batches)
            if built.suffix != ".zip":
                built.mkdir()
            rocrate.write(crate, built)
        elif fmt == "all":
            _write_all(runs, built, license=license, usability=usability, title=title, authors=authors,
                       publisher=publisher, batches=batches)
        else:
            raise UsageError(f"unknown format {fmt!r}")
        now = _existing(target, force) if existing is not None else None  # again: it may be a link by now
        if now is not None and stat.S_ISDIR(now.st_mode):
            shutil.rmtree(target)  # removes links inside, never what they point to
        elif now is not None:
            target.unlink()
        os.replace(built, target)
    except OSError as exc:
        raise UsageError(f"cannot write {shown}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(p for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file())


def _existing(target: Path, force: bool) -> os.stat_result | None:
    """What is at `target` now (not following a link), if anything; refuses what may not be replaced."""
    shown = printable(target)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot write {shown}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(f"{shown} is a symbolic link: runlog does not write through links; "
                         f"give `path` the real path ({printable(os.path.realpath(target))}) or another one",
                         option="path")
    if not force:
        raise UsageError(f"{shown} exists: give `force=True` to replace it, or another `path`", option="force")
    if stat.S_ISDIR(info.st_mode):
        here = Path.cwd().resolve()
        if here == target.resolve() or target.resolve() in here.parents:
            raise UsageError(f"{shown} contains the current directory: `force=True` would delete it; give another "
                             "`path`", option="path")
        return info
    if stat.S_ISREG(info.st_mode):
        return info
    raise UsageError(f"{shown} is not a regular file or directory: `force=True` replaces only those; give another "
                     "`path`", option="path")


CONFORMS = {
    "bco.json": ("BioCompute Object (IEEE 2791-2020)", "https://w3id.org/ieee/ieee-2791-schema/2791object.json"),
    "prov.json": ("W3C PROV-JSON", "https://www.w3.org/submissions/prov-json/"),
    "prov.provn": ("W3C PROV-N", "https://www.w3.org/TR/prov-n/"),
    "methods/methods.md": ("Methods paragraph", None),
    "methods/parameters.csv": ("Every parameter of every run", None),
    "methods/software.csv": ("Workflows, engines and containers", None),
    "methods/data.csv": ("Inputs and outputs with their identities", None),
    "methods/settings.csv": ("Settings that change results, replay overrides, accepted drift", None),
    "methods/tasks.csv": ("Every task HealthOmics reported", None),
    "methods/samples.csv": ("Per-sample table of the cohort: run setting, run, status, effective parameters, "
                            "input identities", None),
    "methods/CITATION.cff": ("Citation metadata", "https://citation-file-format.github.io/1.2.0/"),
}


def _write_all(runs, directory: Path, *, license, usability, title, authors, publisher, batches=()) -> None:
    """Every format in one directory, the RO-Crate describing the others as data entities.
    Each file is written as soon as it is made and its text dropped (a cohort's BCOs one by
    one), and PROV is made in a forked child, so that no process holds every file of the
    export, and two cores share the work."""
    from runlog.export import rocrate

    directory.mkdir()
    written: list[str] = []

    def put(path: str, text: str) -> None:
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(path)

    from runlog import background

    # PROV (the largest part of a cohort's work) is built and written by a forked child on the
    # other core while this process writes the BCOs, the methods and the crate (inline where
    # fork is unavailable: runlog.background)
    prov = background.start(_write_prov, runs, list(authors), list(batches), str(directory))
    try:
        for path, text in bco_files(runs, usability=usability, license=license, authors=authors,
                                    batches=batches):
            put(path, text)
        for path, text in render(runs, "methods", title=title, authors=authors, license=license,
                                 batches=batches).items():
            put(path, text)
        written += ["prov.json", "prov.provn"]
        attachments = [(path, *CONFORMS.get(path, CONFORMS["bco.json"]), None) for path in sorted(written)]
        crate = rocrate.build(runs, license=license, title=title, attachments=attachments, authors=authors,
                              publisher=publisher, batches=batches)
        rocrate.write(crate, directory)
        del crate
    except BaseException:
        # the child is done with the staging directory before it is removed
        with contextlib.suppress(Exception):
            prov.result()
        raise
    failed = prov.result()
    if failed:
        raise OSError(failed)


def _write_prov(runs, authors: list[dict], batches: list[BatchFacts], directory: str) -> str | None:
    """Write prov.json and prov.provn of the export into `directory`: None, or why the files
    could not be written (the parent reports it as it reports its own write errors)."""
    from runlog.export.prov import prov_both

    texts = prov_both(runs, authors=authors, batches=batches)
    try:
        for name, text in zip(("prov.json", "prov.provn"), texts, strict=True):
            (Path(directory) / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
