"""``python -m streamit`` runs the command-line interface."""

from streamit.cli import main

main()
