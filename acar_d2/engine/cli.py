"""
How the command-line tools end: a user mistake (a missing or malformed file, a refused output, an
output in use) is one line on stderr and exit status 2; a traceback only for a bug (an exception
of an unexpected type) or on request (``--debug`` anywhere on the command line, or
``ACAR_DEBUG=1``).

    if __name__ == "__main__":
        run_cli(main, prog="tools/convert_annotations.py")   # main(argv) -> exit status

    $ python tools/convert_annotations.py cvat-to-csv task.xml labels.pbtxt out.csv --video-id v
    tools/convert_annotations.py: error: task.xml: no <original_size><width>/<height> in <meta>; ...
    $ echo $?
    2

The message is the exception's own: raising code names the file (and line, key, row).
"""
import argparse
import os
import sys
from typing import Callable, List, Optional, Tuple, Type

from ..checkpoint import CheckpointMismatchError, ResumeCheckpointError, UnknownKeysError
from ..utils.output_lock import OutputLockedError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "ACAR_DEBUG"
USER_ERROR_STATUS = 2  # as argparse's usage errors and the evaluator's refusals

# Exceptions that report bad input, not a bug. ValueError covers the project's input errors
# (VideoSourceError, ResumeError, UnsafePickleError, ...) and UnicodeDecodeError; the OSErrors
# are the file-system refusals (missing input, existing output, folder given as a file).
USER_ERRORS: Tuple[Type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    CheckpointMismatchError,
    ResumeCheckpointError,
    UnknownKeysError,
    OutputLockedError,
)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """List ``--debug`` in a tool's ``--help`` (:func:`run_cli` removes it before parsing)."""
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"show the Python traceback of an error (also {DEBUG_ENV}=1)")


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (a KeyError's without its quotes)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def run_cli(main: Callable[[Optional[List[str]]], Optional[int]], argv: Optional[List[str]] = None,
            prog: Optional[str] = None) -> None:
    """
    ``sys.exit(main(argv))`` where user errors end as ``"<prog>: error: <message>"`` (one line)
    with exit status 2: the exceptions of :data:`USER_ERRORS` and ``sys.exit("message")``.

    Args:
        main: the tool's entry, taking its argument list (without ``--debug``) and returning an
            exit status (None: 0).
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the tool's name in the message (default ``sys.argv[0]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != DEBUG_FLAG]
    prog = prog or sys.argv[0]
    try:
        status = main(argv)
    except USER_ERRORS as e:
        if debug:
            raise
        sys.stderr.write(f"{prog}: error: {one_line(e)}\n")
        sys.exit(USER_ERROR_STATUS)
    except SystemExit as e:
        if isinstance(e.code, str) and not debug:
            sys.stderr.write(f"{prog}: error: {one_line(Exception(e.code))}\n")
            sys.exit(USER_ERROR_STATUS)
        raise
    sys.exit(status if isinstance(status, int) else 0)
