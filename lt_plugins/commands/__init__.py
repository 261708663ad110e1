"""Subcommands of the ``lt-plugins`` command line, one module per group (as in accelerate's ``commands/``)."""
