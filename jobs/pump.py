"""``python -m jobs.pump --after PID``: start the next queued jobs once process PID has exited.

A finishing job still holds its model (GPU memory) until its process ends, so it does not start
the next device job itself: it leaves this small detached waiter behind, which pumps the queue
when the job's process is gone.
"""

from __future__ import annotations

import argparse
import sys
import time

from jobs import process

WAIT_MAX_S = 600.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.pump")
    parser.add_argument("--after", type=int, required=True, help="Wait for this process to exit first.")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + WAIT_MAX_S
    while process.is_alive(args.after) and time.monotonic() < deadline:
        time.sleep(0.1)
    from jobs.runtime import pump
    from store.db import connect

    db = connect()
    try:
        pump(db)
    finally:
        db.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
