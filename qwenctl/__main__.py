from qwenctl.cli import main

main()
