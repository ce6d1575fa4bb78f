"""The ``bayesmix`` command's entry point (also ``python -m bayesmix``).

It lets Python cache the bytecode of everything the command imports, NumPy and pandas
included, before importing them: see :func:`bayesmix.cli.main`.
"""

import sys


def main() -> int:
    """Run :func:`bayesmix.cli.main` with bytecode caching on."""
    sys.dont_write_bytecode = False  # before bayesmix.cli imports NumPy, pandas, ...
    from bayesmix.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
