"""Resume checkpoints: confirmed rows survive a stop, and only for the same input content."""

from __future__ import annotations

from pathlib import Path

import pytest

from biteral_cli.checkpoint import Checkpoint, content_hash, default_checkpoint_path
from biteral_cli.errors import InputError, ReportError, UsageError

HASHES = {"a.csv": "aaaa", "b.jsonl": "bbbb"}


def test_default_path_sits_next_to_the_failure_report(tmp_path: Path) -> None:
    failures = tmp_path / "customers.failures.csv"
    assert default_checkpoint_path(failures) == tmp_path / "customers.failures.csv.checkpoint"


def test_confirmed_rows_are_done_after_resume(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    first = Checkpoint.open(path, input_hashes=HASHES, resume=False)
    first.confirm([("a.csv", 2), ("a.csv", 3), ("b.jsonl", 1)])
    first.confirm([("a.csv", 3)])  # confirmed twice (a retried batch) counts once
    assert first.done_count == 3
    first.close(completed=False)

    second = Checkpoint.open(path, input_hashes=HASHES, resume=True)
    assert second.note is None
    assert second.done_count == 3
    assert second.is_done("a.csv", 2) and second.is_done("a.csv", 3)
    assert second.is_done("b.jsonl", 1)
    assert not second.is_done("b.jsonl", 2) and not second.is_done("a.csv", 1)
    second.confirm([("b.jsonl", 2)])
    second.close(completed=False)

    third = Checkpoint.open(path, input_hashes=HASHES, resume=True)
    assert third.done_count == 4 and third.is_done("b.jsonl", 2)
    third.close(completed=False)


def test_rows_are_readable_before_close_when_the_process_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    running = Checkpoint.open(path, input_hashes=HASHES, resume=False)
    running.confirm([("a.csv", 5)])
    # No close(): a killed run. What was confirmed has already reached the file.
    resumed = Checkpoint.open(path, input_hashes=HASHES, resume=True)
    assert resumed.is_done("a.csv", 5)
    resumed.close(completed=False)
    running.close(completed=False)


def test_resume_refuses_a_changed_input(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    Checkpoint.open(path, input_hashes=HASHES, resume=False).close(completed=False)
    with pytest.raises(UsageError, match=r"input changed.*run without --resume"):
        Checkpoint.open(path, input_hashes={"a.csv": "CHANGED", "b.jsonl": "bbbb"}, resume=True)
    with pytest.raises(UsageError, match="input changed"):
        Checkpoint.open(path, input_hashes={"a.csv": "aaaa"}, resume=True)


def test_resume_with_inputs_listed_in_another_order_keeps_rows_on_their_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.checkpoint"
    with Checkpoint.open(path, input_hashes=HASHES, resume=False) as cp:
        cp.confirm([("b.jsonl", 9)])
    reordered = {"b.jsonl": "bbbb", "a.csv": "aaaa"}
    with Checkpoint.open(path, input_hashes=reordered, resume=True) as cp:
        assert cp.is_done("b.jsonl", 9) and not cp.is_done("a.csv", 9)
        cp.confirm([("a.csv", 4)])
    with Checkpoint.open(path, input_hashes=HASHES, resume=True) as cp:
        assert cp.is_done("a.csv", 4) and not cp.is_done("b.jsonl", 4)


def test_resume_without_a_checkpoint_starts_fresh_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    cp = Checkpoint.open(path, input_hashes=HASHES, resume=True)
    assert cp.note is not None and "starting from the first row" in cp.note
    assert cp.done_count == 0
    cp.close(completed=False)
    assert path.exists()


def test_a_new_run_discards_the_old_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    with Checkpoint.open(path, input_hashes=HASHES, resume=False) as cp:
        cp.confirm([("a.csv", 2)])
    Checkpoint.open(path, input_hashes=HASHES, resume=False).close(completed=False)
    with Checkpoint.open(path, input_hashes=HASHES, resume=True) as cp:
        assert not cp.is_done("a.csv", 2)


def test_a_line_cut_by_a_kill_is_ignored_and_later_appends_stay_valid(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    with Checkpoint.open(path, input_hashes=HASHES, resume=False) as cp:
        cp.confirm([("a.csv", 2)])
    with open(path, "ab") as fh:
        fh.write(b"0\t1")  # "0\t17\n" interrupted mid-write
    with Checkpoint.open(path, input_hashes=HASHES, resume=True) as cp:
        assert cp.is_done("a.csv", 2)
        assert not cp.is_done("a.csv", 1) and not cp.is_done("a.csv", 17)
        cp.confirm([("a.csv", 5)])
    with Checkpoint.open(path, input_hashes=HASHES, resume=True) as cp:
        assert cp.done_count == 2
        assert cp.is_done("a.csv", 5) and not cp.is_done("a.csv", 15)


def test_a_damaged_checkpoint_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    path.write_bytes(b'{"not": "ours"')
    with pytest.raises(UsageError, match="run without --resume"):
        Checkpoint.open(path, input_hashes=HASHES, resume=True)


def test_a_completed_run_removes_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    cp = Checkpoint.open(path, input_hashes=HASHES, resume=False)
    cp.confirm([("a.csv", 2)])
    cp.close(completed=True)
    assert not path.exists()


def test_an_error_inside_the_with_block_keeps_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    with (
        pytest.raises(KeyboardInterrupt),
        Checkpoint.open(path, input_hashes=HASHES, resume=False) as cp,
    ):
        cp.confirm([("a.csv", 2)])
        raise KeyboardInterrupt
    with Checkpoint.open(path, input_hashes=HASHES, resume=True) as cp:
        assert cp.is_done("a.csv", 2)


def test_content_hash_follows_content_not_name(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_bytes(b"code\nC1\n")
    b.write_bytes(b"code\nC1\n")
    c.write_bytes(b"code\nC2\n")
    assert content_hash(a) == content_hash(b) != content_hash(c)
    with pytest.raises(InputError, match="cannot read"):
        content_hash(tmp_path / "missing.csv")


# -- found by tools/mutation.py: each test below failed on a mutant that had survived -------------


def test_content_hash_values_are_frozen_so_a_checkpoint_resumes_after_an_upgrade(tmp_path: Path) -> None:
    # A checkpoint written by one version is resumed by the next: the hash must not change.
    path = tmp_path / "in.csv"
    expected = {
        b"code\nC1\n": "afc4c4c2c14c1a60ca2b7c50fb85488a",
        b"": "cae66941d9efbd404e4d88758ea67670",
        bytes(range(256)) * 5000: "267d69dd4fad93a5d554e501ad4dad6b",  # more than one read chunk
    }
    for content, digest in expected.items():
        path.write_bytes(content)
        assert content_hash(path) == digest


def test_only_the_inputs_of_the_run_are_tracked_never_standard_input(tmp_path: Path) -> None:
    with Checkpoint.open(tmp_path / "run.checkpoint", input_hashes=HASHES, resume=False) as cp:
        assert cp.note is None  # a fresh run has nothing to say
        assert [cp.tracks(s) for s in ("a.csv", "b.jsonl", "-", "other.csv")] == [True, True, False, False]


def test_a_stray_line_does_not_hide_the_confirmed_rows_after_it(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    with Checkpoint.open(path, input_hashes=HASHES, resume=False) as cp:
        cp.confirm([("a.csv", 2)])
    with open(path, "ab") as fh:
        fh.write(b"garbage\n2\t9\n1\t4\n")  # unreadable, and an input the checkpoint does not have
    with Checkpoint.open(path, input_hashes=HASHES, resume=True) as cp:
        assert cp.done_count == 2 and cp.is_done("a.csv", 2) and cp.is_done("b.jsonl", 4)


def test_a_resumed_run_that_completes_removes_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    Checkpoint.open(path, input_hashes=HASHES, resume=False).close(completed=False)
    resumed = Checkpoint.open(path, input_hashes=HASHES, resume=True)
    resumed.confirm([("a.csv", 3)])
    resumed.close(completed=True)
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [b'{"biteral-import-checkpoint": 1, "inputs": 5}\n', b'{"biteral-import-checkpoint": 1, "inputs": [[1]]}\n'],
)
def test_a_checkpoint_with_a_damaged_input_list_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.checkpoint"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=r"run\.checkpoint.*run without --resume"):
        Checkpoint.open(path, input_hashes=HASHES, resume=True)


def test_an_unreadable_or_unwritable_checkpoint_is_a_report_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "a-directory.checkpoint"
    folder.mkdir()
    with pytest.raises(ReportError, match=r"a-directory\.checkpoint"):
        Checkpoint.open(folder, input_hashes=HASHES, resume=True)
    with pytest.raises(ReportError, match="missing"):
        Checkpoint.open(tmp_path / "missing" / "run.checkpoint", input_hashes=HASHES, resume=False)
