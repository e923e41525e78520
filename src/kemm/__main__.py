from kemm.cli import main

main()
