from runlog.cli import main

main()
