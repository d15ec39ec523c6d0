"""A job entry point for tests: records the argv and the job config it received, runs nothing else.

``python -m tests.support.argv_probe --job ID [ARGS...]`` records as the job's result its argv, its job config,
whether torch.load is forced weights-only, and which login secrets it inherited, so a test can check
that strings full of shell metacharacters arrive literally and that no secret leaks into a job.
"""

from __future__ import annotations

import os
import sys

from jobs.process import run_as_job
from store.access import LOGIN_SECRETS
from store.db import connect
from store.jobs import get_job


def main() -> int:
    args = sys.argv[1:]
    job_id = int(args[args.index("--job") + 1])

    def body(jid: int) -> dict:
        forced = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
        secrets = sorted(k for k in LOGIN_SECRETS if k in os.environ)
        config = get_job(connect(), jid).config
        return {"argv": args, "config": config, "weights_only": forced, "login_secrets": secrets}

    return run_as_job(job_id, body)


if __name__ == "__main__":
    sys.exit(main())
