"""The memory allocator a command line runs with: jemalloc or tcmalloc where the system has one.

TensorFlow builds, optimises and partitions a supernet's step graph with millions of small
allocations, and glibc's malloc spent about a fifth of that time consolidating its free lists and
faulting pages back in (perf, docs/performance.md). Preloaded, jemalloc took the NB201 supernet's
first step from 9 s to 6 s and the 8-cell DARTS supernet's from 38 s to 31 s, later steps no slower
and every value the same. A running process cannot change its allocator, so a command line
(`python -m itnas_tf.search`, ...) that finds one starts itself again with it in `LD_PRELOAD`, before
TensorFlow loads. Its own subprocesses get the environment it was started with. The command lines
that time models for deployment (`itnas_tf.latency`, `export`) keep the system's allocator.

`ITNAS_MALLOC`: `auto` (the default: jemalloc, else tcmalloc, else glibc's), `system` (glibc's), or
the path of an allocator's shared library.
"""

import ctypes.util
import os
import sys

SWITCH = "ITNAS_MALLOC"
CANDIDATES = ("jemalloc", "tcmalloc_minimal", "tcmalloc")
PRELOAD = "LD_PRELOAD"
_RESTARTED = "_ITNAS_MALLOC_RESTARTED"  # across the exec: the user's LD_PRELOAD, to give back


def library():
    """The allocator to preload, by `$ITNAS_MALLOC`: a library's name or path, or None (glibc's)."""
    choice = os.environ.get(SWITCH, "auto")
    if choice == "system" or not sys.platform.startswith("linux"):
        return None
    if choice != "auto":
        if not os.path.isfile(choice):
            raise ValueError(f"{SWITCH}={choice!r} is not a file: give the path of an allocator's shared library "
                             "(e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2), `auto` or `system`.")
        return choice
    for name in CANDIDATES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def preloaded(environ):
    """A copy of `environ` with `library()` first in `LD_PRELOAD`; None if there is none to add (none
    found, `system`, or an allocator of `CANDIDATES` already preloaded)."""
    lib = library()
    current = environ.get(PRELOAD, "")
    if lib is None or lib in current or any(name in current for name in CANDIDATES):
        return None
    return {**environ, PRELOAD: f"{lib}:{current}" if current else lib}


# They time models for deployment (a latency table, an export's latency check), where the allocator is
# the deployed program's: they keep the system's.
MEASURING = ("itnas_tf.latency",)


def ours(argv):
    """Whether `argv` (`sys.orig_argv`) runs one of our training command lines with `-m`
    (`itnas_tf.X`, but not those of `MEASURING`; not `export`)."""
    return any(a == "-m" and b.startswith("itnas_tf.") and b not in MEASURING for a, b in zip(argv, argv[1:]))


def restart_preloaded():
    """Replaces this process by the same command line with `library()` preloaded, once; after that
    start, gives `LD_PRELOAD` back its value so that subprocesses see the user's environment."""
    if _RESTARTED in os.environ:
        before = os.environ.pop(_RESTARTED)
        if before:
            os.environ[PRELOAD] = before
        else:
            os.environ.pop(PRELOAD, None)
        return
    environ = preloaded(os.environ)
    if environ is None:
        return
    environ[_RESTARTED] = os.environ.get(PRELOAD, "")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
