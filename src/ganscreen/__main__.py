from ganscreen.cli import main

main()
