"""Command-line entry points: ``m2fp`` (subcommands, one module each) and ``m2fp-server``."""
