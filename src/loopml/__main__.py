"""``python -m loopml`` runs the command line."""

from loopml.cli import main

if __name__ == "__main__":
    main()
