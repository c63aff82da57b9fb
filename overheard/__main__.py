"""`python -m overheard` is the `overheard` command."""

from overheard.cli import app

app(prog_name="overheard")
