from layoutnet.export.cli import main

main()
