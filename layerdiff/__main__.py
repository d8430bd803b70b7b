"""Run the command line as ``python -m layerdiff``."""

from .cli import run

run()
