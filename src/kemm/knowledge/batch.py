"""Running one function over every report of a cohort, the way refinement and fact filling do.

Reports run ``workers`` at a time (the backend's concurrency). A report that fails is isolated:
its outcome is the one-line reason, and the run goes on. A setup problem (no model, a config
error, an endpoint that never answers) is not a report's failure: it stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from tqdm import tqdm

from kemm.errors import ConfigError
from kemm.knowledge.backends import EndpointUnreachable

log = logging.getLogger(__name__)

R = TypeVar("R")
SETUP_PROBLEMS = (ConfigError, EndpointUnreachable)


def run_per_report(
    items: Iterable[tuple[str, str]],
    one: Callable[[str, str], R],
    *,
    workers: int = 1,
    desc: str = "reports",
    progress: bool = True,
) -> dict[str, R | str]:
    """``case_id -> one(case_id, text)``, or the failure as ``"Type: message"``, in input order
    (a report never reached, after an interrupt, is ``"interrupted"``)."""
    items = list(items)
    outcomes: dict[str, R | str] = {}
    bar = tqdm(total=len(items), desc=desc, unit="report", disable=not progress)

    def record(case_id: str, outcome: R | Exception) -> None:
        if isinstance(outcome, Exception):
            outcomes[case_id] = f"{type(outcome).__name__}: {outcome}"
            log.warning("%s failed for %s: %s", desc, case_id, outcome)
        else:
            outcomes[case_id] = outcome
        bar.update(1)

    try:
        if workers <= 1:
            for case_id, text in items:
                try:
                    record(case_id, one(case_id, text))
                except SETUP_PROBLEMS:
                    raise
                except Exception as error:  # isolated per report, reported at the end
                    record(case_id, error)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(one, cid, text): cid for cid, text in items}
                for future in as_completed(futures):
                    try:
                        record(futures[future], future.result())
                    except SETUP_PROBLEMS:
                        raise
                    except Exception as error:
                        record(futures[future], error)
    finally:
        bar.close()
    return {case_id: outcomes.get(case_id, "interrupted") for case_id, _ in items}
