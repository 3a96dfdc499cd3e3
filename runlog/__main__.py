import sys

from runlog.cli import main, run

# `python -m runlog`: the program itself, which ends at once when the command is done
# (runlog.cli.run); run by a program of its own (runpy), the command ends with SystemExit
if vars(sys.modules["__main__"]) is globals():
    run()
else:
    main()
