"""A launcher prefix that slows a job down through its injected hook, so a kill lands mid-run.

``python -m tests.support.throttled SECONDS -m training.run --job ID`` runs the entry module's
``main`` with ``after_step`` / ``after_chunk`` sleeping SECONDS. Product code has no sleep of its
own for tests: the hook is a plain parameter. Pass :func:`throttled` as a job's ``launcher``; it is
stored with the job, so a resumed run is slowed the same way.
"""

from __future__ import annotations

import sys
import time


def throttled(seconds: float) -> list[str]:
    """The launcher prefix (stands where ``python`` would)."""
    return [sys.executable, "-m", "tests.support.throttled", str(seconds)]


def _main(argv: list[str]) -> int:
    seconds, flag, module, *rest = argv
    assert flag == "-m", argv
    pause = lambda: time.sleep(float(seconds))  # noqa: E731
    if module == "training.run":
        from training.run import main

        return main(rest, after_step=pause)
    if module == "eval.run":
        from eval.run import main

        return main(rest, after_chunk=pause)
    raise SystemExit(f"no hook for {module}")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
