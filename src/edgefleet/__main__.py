"""`python -m edgefleet`: the same as the `edgefleet` command."""

from edgefleet.cli.main import main

main()
