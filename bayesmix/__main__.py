"""The ``bayesmix`` command's entry point (also ``python -m bayesmix``).

It lets Python cache the bytecode of everything the command imports, NumPy and pandas
included, before importing them: see :func:`bayesmix.cli.main`.

When the command is done it flushes its output, runs the exit handlers and leaves at once
(``os._exit``): tearing down the interpreter after a fit (PyTensor graphs, Numba, matplotlib,
some 1,700 modules) took about 1 s and does nothing for the user. Every file the command
writes is closed and renamed into place before it returns.
"""

import os
import sys


def main() -> int:
    """Run :func:`bayesmix.cli.main` with bytecode caching on, then exit without teardown."""
    sys.dont_write_bytecode = False  # before bayesmix.cli imports NumPy, pandas, ...
    from bayesmix.cli import main as cli_main

    status = cli_main()
    _exit_now(status)
    return status  # pragma: no cover - _exit_now does not return


def _exit_now(status: int) -> None:
    import atexit

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (bayesmix ... | head)
            pass
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # pragma: no cover - another Python: exit the usual way
        sys.exit(status)
    run_exit_handlers()  # logging, temporary folders, thread pools
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
