from onefold.cli import main

main()
