"""``python -m certflow`` is the ``certflow`` command."""

from certflow.cli import main

main()
