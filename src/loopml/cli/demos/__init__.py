"""One module per ``loopml demo <name>``: each has ``run(directory) -> dict`` and ``render(summary)``."""
