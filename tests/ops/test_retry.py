"""Which failures are retried: transient faults only, never a gate's verdict."""

from __future__ import annotations

import sqlite3

import pytest

from lmforge.ops.retry import is_transient, retry_options


def _raised_from(outer: type[BaseException], inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer("wrapped") from err
    except BaseException as err:
        return err


def test_transient_faults() -> None:
    from lmforge.registry.tracking import TrackingUnavailable
    from lmforge.serve.engine import EngineError

    assert is_transient(ConnectionRefusedError(111, "refused"))
    assert is_transient(TimeoutError())
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert is_transient(TrackingUnavailable("MLflow tracking at http://127.0.0.1:5 is unreachable"))
    assert is_transient(EngineError("vLLM did not answer /health in 240 s"))
    assert is_transient(_raised_from(RuntimeError, ConnectionResetError()))  # found through the cause chain


def test_verdicts_and_bugs_are_not_retried() -> None:
    from lmforge.data.validate import DataGateError
    from lmforge.distill.stage import GateFailed
    from lmforge.registry.promote import PromotionRefused

    assert not is_transient(DataGateError("corpus: expect_column_values_to_not_be_null(text): 3 unexpected"))
    assert not is_transient(GateFailed("student ppl 1.9x the teacher's"))
    assert not is_transient(PromotionRefused("gate distill failed"))
    assert not is_transient(_raised_from(GateFailed, ConnectionError()))  # a verdict wins over its cause
    assert not is_transient(sqlite3.OperationalError("no such table: runs"))
    assert not is_transient(ValueError("bad override"))
    assert not is_transient(FileNotFoundError("shards not found"))
    assert not is_transient(None)


@pytest.mark.parametrize("retries,first,expected", [(3, 2.0, [2.0, 4.0, 8.0]), (1, 0.5, [0.5]), (0, 1.0, [])])
def test_backoff(retries: int, first: float, expected: list[float]) -> None:
    from prefect import task

    assert retry_options(retries, first)["retry_delay_seconds"](retries) == expected
    assert task(**retry_options(retries, first))(lambda: None).retry_delay_seconds == expected  # as Prefect reads it
