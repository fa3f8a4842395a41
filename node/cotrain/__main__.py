"""`python -m cotrain` is the `cotrain` command."""

from cotrain.cli import run

run()
