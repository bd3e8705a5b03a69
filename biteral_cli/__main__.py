"""Entry point: ``biteral-import`` and ``python -m biteral_cli``."""

from __future__ import annotations


def main() -> None:
    """Run the command line; exit codes are documented on the import command."""
    from .cli import app

    app(prog_name="biteral-import")


if __name__ == "__main__":
    main()
