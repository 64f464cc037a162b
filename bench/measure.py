#!/usr/bin/python3
"""Runs a command and, after it exits, prints one JSON line to stdout:
{"wall_s": ..., "cpu_s": ..., "max_rss_mib": ..., "exit_code": ...}

cpu_s is user + system time of the command and everything it waited for (RUSAGE_CHILDREN);
max_rss_mib is the peak resident set of the largest such process. Measuring every client
through this script makes their figures comparable. Exits with the command's exit code.

Usage: measure.py COMMAND [ARG...]
"""

import json
import resource
import signal
import subprocess
import sys
import time


def main():
    argv = sys.argv[1:]
    if not argv:
        sys.exit(__doc__)
    started = time.monotonic()
    child = subprocess.Popen(argv)
    # Pass a stop request on to the command, so it is measured and reaped, not orphaned.
    signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    exit_code = child.wait()
    wall_s = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    # on a line of its own even if the command's last output line was unterminated
    print("\n" + json.dumps({
        "wall_s": round(wall_s, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "exit_code": exit_code,
    }), flush=True)
    sys.exit(exit_code if exit_code >= 0 else 128 - exit_code)


if __name__ == "__main__":
    main()
