"""`python -m bench.peak MODULE [ARGS...]`: run MODULE as `python -m` would, then print the
peak resident memory of this process (VmHWM) to stderr as `peak-rss-kb N`.

Not getrusage: on Linux a child's ru_maxrss also counts the parent's memory at the time
it was started, which would charge the benchmark's own arrays to the job.
"""

import atexit
import runpy
import sys


def report_peak() -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print(f"peak-rss-kb {line.split()[1]}", file=sys.stderr)


if __name__ == "__main__":
    atexit.register(report_peak)
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
