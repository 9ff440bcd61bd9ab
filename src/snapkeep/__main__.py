from snapkeep.cli.main import main

main()
