"""Chunks read and normalized one ahead of the upload (``ChunksAhead``), and an upload of a file
of several chunks end to end (the rows of later chunks are the ones read ahead)."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.chunk import CHUNK_ROWS
from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox
from biteral_cli.upload import ChunksAhead


class Recorder:
    """A work function that notes which thread did each chunk and whether two ever overlapped."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.threads: dict[str, str] = {}
        self.busy = threading.Lock()
        self.overlapped = False
        self.fail_on = fail_on
        self.release = threading.Event()
        self.release.set()

    def __call__(self, chunk: str) -> str:
        if not self.busy.acquire(blocking=False):
            self.overlapped = True
            self.busy.acquire()
        try:
            self.release.wait()
            self.threads[chunk] = threading.current_thread().name
            if chunk == self.fail_on:
                raise ValueError(f"cannot work out {chunk}")
            return chunk.upper()
        finally:
            self.busy.release()


def test_chunks_come_in_order_each_worked_out_once_in_the_background() -> None:
    work = Recorder()
    ahead = ChunksAhead(iter(["a", "b", "c"]), work)
    got = [(chunk, ahead.result(chunk)) for chunk in ahead]
    assert got == [("a", "A"), ("b", "B"), ("c", "C")]
    assert set(work.threads) == {"a", "b", "c"}
    assert all(name != threading.current_thread().name for name in work.threads.values())


def test_the_next_chunk_is_read_while_the_current_one_is_used() -> None:
    work = Recorder()
    read: list[str] = []

    def source() -> Iterator[str]:
        for chunk in ("a", "b", "c"):
            read.append(chunk)
            yield chunk

    ahead = ChunksAhead(source(), work)
    first = next(ahead)
    assert ahead.result(first) == "A"
    ahead_of_caller = next(ahead)  # "b": by now "c" is being read
    assert ahead_of_caller == "b"
    ahead._next.join()  # type: ignore[union-attr]
    assert read == ["a", "b", "c"]


def test_a_chunk_read_before_is_worked_out_here_then_reading_ahead_starts() -> None:
    work = Recorder()
    ahead = ChunksAhead(iter(["b", "c"]), work)
    assert ahead.result("sample") == "SAMPLE"  # the sample, read before the iterator
    assert work.threads["sample"] == threading.current_thread().name
    assert [ahead.result(chunk) for chunk in ahead] == ["B", "C"]


def test_work_never_runs_twice_at_once() -> None:
    work = Recorder()
    work.release.clear()  # the read-ahead of "b" waits inside the work
    ahead = ChunksAhead(iter(["b"]), work)
    ahead._start()
    timer = threading.Timer(0.05, work.release.set)
    timer.start()
    try:
        assert ahead.result("sample") == "SAMPLE"  # waits for the read-ahead first
    finally:
        timer.cancel()
        work.release.set()
    assert not work.overlapped
    assert [ahead.result(chunk) for chunk in ahead] == ["B"]


def test_a_reading_error_comes_after_the_chunks_before_it() -> None:
    def source() -> Iterator[str]:
        yield "a"
        raise OSError("disk gone")

    ahead = ChunksAhead(source(), Recorder())
    assert next(ahead) == "a"
    with pytest.raises(OSError, match="disk gone"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_a_work_error_comes_with_its_chunk() -> None:
    ahead = ChunksAhead(iter(["a", "b"]), Recorder(fail_on="b"))
    assert ahead.result(next(ahead)) == "A"
    chunk = next(ahead)
    with pytest.raises(ValueError, match="cannot work out b"):
        ahead.result(chunk)


@pytest.mark.slow
@pytest.mark.usefixtures("in_tmp")
def test_upload_of_several_chunks_stores_every_row_and_the_last_value_of_a_repeated_code(
    sandbox_factory: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    sandbox = sandbox_factory()
    rows = 2 * CHUNK_ROWS + 10
    path = tmp_path / "many.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["code", "city", "country"])
        for i in range(rows):
            writer.writerow([f"AHEAD{i:06d}", "Valencia", "ES"])
        writer.writerow(["AHEAD000001", "Madrid", "ES"])  # the same code, two chunks later
    result = CliRunner().invoke(
        app,
        [str(path), "--api-url", sandbox.url, "--concurrency", "4", "--summary-json", "s.json"],
        env={"BITERAL_API_KEY": sandbox.api_key},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["accepted"] == rows + 1
    assert sandbox.stats.items_received == rows + 1
    headers = {"X-API-Key": sandbox.api_key, "X-API-Version": "1"}
    with httpx.Client(base_url=sandbox.url, headers=headers) as http:
        last = http.get("/customers", params={"code": f"AHEAD{rows - 1:06d}"}).json()["payload"]
        repeated = http.get("/customers", params={"code": "AHEAD000001"}).json()["payload"]
    assert last["city"] == "Valencia"
    assert repeated["city"] == "Madrid"
