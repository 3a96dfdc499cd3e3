import sys

from runlog.cli import main, run


def _started_for_runlog() -> bool:
    """Whether the interpreter was started to run this module (`python [options] -m runlog`):
    then it is the program, which ends at once when the command is done (runlog.cli.run).
    Run any other way (runpy from a program, IPython's `%run -m`, `python -m pdb -m runlog`),
    the command ends with SystemExit and the program goes on."""
    argv = getattr(sys, "orig_argv", [])
    at = 1
    while at < len(argv):  # the interpreter's options, up to the one that names what it runs
        option = argv[at]
        if not option.startswith("-") or option == "-" or option.startswith("--"):
            if option in ("--check-hash-based-pycs",):
                at += 2
                continue
            return False  # a script, standard input, or an option runlog does not read
        flags = option[1:]
        if flags[0] in "XW":  # -X/-W and their value, joined or next
            at += 1 if len(flags) > 1 else 2
            continue
        if "c" in flags.split("m")[0]:
            return False  # -c: a program of its own
        if "m" in flags:
            module = flags.split("m", 1)[1] or (argv[at + 1] if at + 1 < len(argv) else "")
            return module in ("runlog", "runlog.__main__")
        at += 1
    return False


if _started_for_runlog():
    run()
else:
    main()
