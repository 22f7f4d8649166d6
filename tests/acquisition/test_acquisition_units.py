"""Pure logic of the acquisition worker: frame id tracking and trimmed-unread accounting."""

from __future__ import annotations

from acquisition.worker import FrameIdTracker, TrimMonitor
from core.bus import last_frame_id_key, stream_key


def test_consecutive_ids_have_no_gap() -> None:
    t = FrameIdTracker()
    out = [t.next(raw, now=i * 0.03) for i, raw in enumerate(range(0, 5))]
    assert out == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]


def test_gap_is_counted_and_preserved() -> None:
    t = FrameIdTracker(last_id=100)
    assert t.next(7, now=0.0) == (101, 0)
    assert t.next(8, now=0.03) == (102, 0)
    assert t.next(11, now=0.13) == (105, 2)  # camera ids 9 and 10 lost


def test_gigE_16bit_wrap_is_not_a_gap() -> None:
    t = FrameIdTracker()
    t.next(65534, now=0.0)
    assert t.next(65535, now=0.03) == (2, 0)
    assert t.next(1, now=0.06) == (3, 0)  # GigE BlockID skips 0 when it wraps
    assert t.next(3, now=0.12) == (5, 1)


def test_restart_after_reconnect_continues_without_negative_gap() -> None:
    t = FrameIdTracker()
    for i, raw in enumerate(range(1000, 1010)):
        t.next(raw, now=i * 0.03)
    t.new_session()
    assert t.next(0, now=5.0) == (11, 0)
    assert t.next(1, now=5.03) == (12, 0)


def test_backwards_or_implausible_jump_is_a_new_sequence() -> None:
    t = FrameIdTracker(last_id=10)
    t.next(500, now=0.0)
    assert t.next(3, now=0.03) == (12, 0)  # went backwards without a wrap
    assert t.next(10**9, now=0.06) == (13, 0)  # a jump no camera can make in 30 ms


def test_missing_counter_still_gives_unique_ids() -> None:
    t = FrameIdTracker(last_id=3)
    assert [t.next(None)[0] for _ in range(3)] == [4, 5, 6]


def test_trim_monitor_counts_only_undelivered_entries() -> None:
    m = TrimMonitor(maxlen=3)
    # Stream capped at 3: the 4th XADD trims entry 1, the 5th entry 2, ...
    assert m.on_xadd((1, 0), 1, (0, 0)) == 0
    assert m.on_xadd((2, 0), 2, (0, 0)) == 0
    assert m.on_xadd((3, 0), 3, (0, 0)) == 0
    assert m.on_xadd((4, 0), 3, (1, 0)) == 0  # entry 1 trimmed, it had been delivered
    assert m.on_xadd((5, 0), 3, (1, 0)) == 1  # entry 2 trimmed unread
    assert m.on_xadd((6, 0), 3, (0, 0)) == 1  # no group: trimmed = lost
    assert len(m.written) == 3


def test_trim_monitor_old_entries_and_resync() -> None:
    # 2 entries from before the worker started, ids 1-0 and 2-0.
    m = TrimMonitor(maxlen=2, existing=2, first_id=(1, 0), last_id=(2, 0))
    assert m.on_xadd((3, 0), 2, (2, 0)) == 0  # old entry trimmed after it was delivered
    m2 = TrimMonitor(maxlen=2, existing=2, first_id=(1, 0), last_id=(2, 0))
    assert m2.on_xadd((3, 0), 2, (0, 0)) == 1  # old entry trimmed, never delivered
    # The stream was deleted behind the worker's back (or Redis restarted without it): its
    # undelivered entries (old 2-0 and our 3-0) are lost and counted.
    assert m2.on_xadd((4, 0), 1, (0, 0)) == 2
    assert list(m2.written) == [(4, 0)]


def test_trim_monitor_acked_entries_deleted_by_inference_are_not_drops() -> None:
    """Issue 17.4: the inference worker deletes what it acknowledged; that is no loss."""
    m = TrimMonitor(maxlen=100)
    for n in range(1, 6):
        assert m.on_xadd((n, 0), n, (0, 0)) == 0
    # entries 1-3 delivered, acked and deleted: 2 left + the new one
    assert m.on_xadd((6, 0), 3, (3, 0)) == 0
    # Redis restarted empty (no persistence): 4-0 .. 6-0 were never delivered
    assert m.on_xadd((7, 0), 1, (0, 0)) == 3


def test_keys() -> None:
    assert stream_key("l1") == "frames:l1"
    assert last_frame_id_key("l1") == "frameid:l1"
