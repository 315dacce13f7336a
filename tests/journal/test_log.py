"""The journal: torn lines, concurrent writers, format versions."""
import json
import multiprocessing
import os

import pytest

from hpc_tune.journal import FORMAT_VERSION, Journal, JournalError


def test_append_and_read_round_trip(tmp_path):
    j = Journal(str(tmp_path))
    j.append({"e": "a", "x": 1}, {"e": "b", "x": 2})
    events = j.events()
    assert [e["e"] for e in events] == ["a", "b"]
    assert all(e["v"] == FORMAT_VERSION and "t" in e for e in events)


def test_incremental_read_returns_only_new_events(tmp_path):
    j = Journal(str(tmp_path))
    j.append({"e": "a"})
    first, offset = j.read(0)
    j.append({"e": "b"})
    new, offset2 = j.read(offset)
    assert [e["e"] for e in first] == ["a"] and [e["e"] for e in new] == ["b"]
    assert offset2 == os.path.getsize(j.path)


def test_torn_last_line_is_ignored_then_repaired(tmp_path):
    j = Journal(str(tmp_path))
    j.append({"e": "a"}, {"e": "b"})
    with open(j.path, "ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"v":1,"e":"half-writ')
    events, offset = j.read(0)
    assert [e["e"] for e in events] == ["a", "b"]
    assert offset < os.path.getsize(j.path)
    j.append({"e": "c"})
    assert [e["e"] for e in j.events()] == ["a", "b", "c"]
    with open(j.path, "rb") as fh:
        assert b"half-writ" not in fh.read()


def test_torn_line_without_any_newline_is_dropped(tmp_path):
    j = Journal(str(tmp_path))
    with open(j.path, "wb") as fh:
        fh.write(b'{"v":1,"e":"x"')
    assert j.events() == []
    j.append({"e": "a"})
    assert [e["e"] for e in j.events()] == ["a"]


def test_newer_format_is_refused_with_a_clear_message(tmp_path):
    j = Journal(str(tmp_path))
    j.append({"e": "a"})
    with open(j.path, "a") as fh:
        fh.write(json.dumps({"v": FORMAT_VERSION + 1, "e": "future"}) + "\n")
    with pytest.raises(JournalError, match="newer hpc-tune"):
        j.events()


def test_garbage_complete_line_is_skipped_and_counted(tmp_path):
    j = Journal(str(tmp_path))
    j.append({"e": "a"})
    with open(j.path, "a") as fh:
        fh.write("not json\n")
    j.append({"e": "b"})
    assert [e["e"] for e in j.events()] == ["a", "b"]
    assert j.skipped_lines == 1


def _writer(args):
    path, worker, n = args
    j = Journal(path)
    for i in range(n):
        j.append({"e": "n", "w": worker, "i": i})


def test_concurrent_appends_from_processes_lose_nothing(tmp_path):
    workers, n = 6, 60
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_writer, [(str(tmp_path), w, n) for w in range(workers)])
    events = Journal(str(tmp_path)).events()
    assert len(events) == workers * n
    seen = {(e["w"], e["i"]) for e in events}
    assert len(seen) == workers * n
    for w in range(workers):  # each writer's own events stay in order
        assert [e["i"] for e in events if e["w"] == w] == list(range(n))


def test_lock_timeout_names_the_lock_file_and_holder(tmp_path):
    from filelock import FileLock

    j = Journal(str(tmp_path), lock_timeout=0.2)
    j.append({"e": "a"})  # leaves an owner record
    with FileLock(j.lock_path):
        with pytest.raises(JournalError) as info:
            Journal(str(tmp_path), lock_timeout=0.2).append({"e": "b"})
    assert j.lock_path in str(info.value) and "pid=" in str(info.value)


def test_non_finite_numbers_are_refused_before_writing(tmp_path):
    j = Journal(str(tmp_path))
    with pytest.raises(ValueError):
        j.append({"e": "x", "value": float("nan")})
    assert j.events() == []


def test_blank_lines_bad_lines_and_any_block_size_give_the_same_events(tmp_path):
    j = Journal(str(tmp_path))
    with open(j.path, "wb") as fh:
        fh.write(b"\n")  # a blank first line
    j.append(*[{"e": "n", "i": i, "s": "x" * (i % 7)} for i in range(40)])
    with open(j.path, "ab") as fh:
        fh.write(b"\n \t\nnot json\n42\n")  # blank lines: ignored; the other two: skipped and counted
    j.append(*[{"e": "m", "i": i} for i in range(20)])
    with open(j.path, "ab") as fh:
        fh.write(b'{"v":1,"e":"torn')
    with open(j.path, "rb") as fh:
        lines = fh.read().split(b"\n")[:-1]
    expected = [json.loads(line) for line in lines if line.strip() and line.startswith(b"{")]
    complete = os.path.getsize(j.path) - len(b'{"v":1,"e":"torn')
    for block in (1, 5, 64, 333, 4096, 1 << 20):
        reader = Journal(str(tmp_path))
        got = []
        assert reader.scan(0, got.append, block=block) == complete
        assert got == expected and reader.skipped_lines == 2, block


def test_scan_pauses_the_garbage_collector_and_restores_it(tmp_path):
    import gc

    j = Journal(str(tmp_path))
    j.append({"e": "a"})
    assert gc.isenabled()
    seen = []
    j.scan(0, lambda e: seen.append(gc.isenabled()))
    assert seen == [False] and gc.isenabled()

    def boom(e):
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        j.scan(0, boom)
    assert gc.isenabled()
    gc.disable()
    try:
        j.scan(0, lambda e: None)
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
