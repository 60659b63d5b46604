from linkjuice.cli import main

main()
