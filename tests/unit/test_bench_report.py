"""The benchmark report: floor/bridge pairing, the median of repeats, the latency excess over the floor."""

from __future__ import annotations

from bench.run import Point, agent_table, floor_table, replay_table, representative, table


def point(mode: str, repeat: int, cpu: float, up_p99: float, calls: int = 10) -> Point:
    p = Point(mode, calls, 100, 8.0, repeat=repeat, cpu_ms_per_call_s=cpu)
    p.upstream_ms = {"p50": 1.0, "p99": up_p99, "max": up_p99 + 1}
    p.downstream_ms = {"p50": 1.0, "p99": 2.0, "max": 3.0}
    p.barge_in_ms = {"p50": 0.0, "p99": 0.0, "max": 0.0}
    p.gen_lag_ms = {"p99": 0.5}
    return p


def test_the_repeat_with_the_median_ratio_represents_the_point() -> None:
    points = [
        point("floor", 0, 10.0, 4.0),
        point("bridge", 0, 13.0, 5.0),  # 1.30
        point("floor", 1, 8.0, 3.0),
        point("bridge", 1, 8.8, 4.5),  # 1.10 (median)
        point("floor", 2, 9.0, 3.5),
        point("bridge", 2, 9.0, 3.5),  # 1.00
        point("floor", 0, 5.0, 9.0, calls=50),
        point("bridge", 0, 6.0, 12.0, calls=50),  # a point measured once
    ]
    chosen = representative(points)
    assert [(f.repeat, b.repeat, [round(r, 2) for r in rs]) for f, b, rs in chosen] == [
        (1, 1, [1.0, 1.1, 1.3]),
        (0, 0, [1.2]),
    ]
    rows = table(points).splitlines()[2:]
    assert rows[0].startswith("| 10 | 100 ms | 8.0 | 8.8 | **1.10** (1.00/1.10/1.30) |")
    assert "| +1.5 |" in rows[0]  # the chosen repeat's upstream p99 minus its own floor's
    assert rows[1].startswith("| 50 | 100 ms | 5.0 | 6.0 | **1.20** |") and "| +3.0 |" in rows[1]
    assert floor_table(points).splitlines()[2].startswith("| 10 | 100 ms | 1.0/3.0 |")


def test_a_bridge_point_without_its_floor_is_not_reported() -> None:
    assert table([point("bridge", 0, 9.0, 4.0)]).count("\n") == 1  # header only


def test_replay_cost_is_the_replay_point_over_the_plain_bridge_of_the_same_repeat() -> None:
    plain, replay = point("bridge", 0, 8.0, 4.0), point("replay", 0, 10.0, 6.0)
    plain.broker_ms_per_call_s, replay.broker_ms_per_call_s = 5.0, 7.5
    replay.stream_bytes_per_call_s = 20_480
    other_repeat = point("replay", 1, 99.0, 9.0)  # no plain bridge of its repeat: not reported
    rows = replay_table([point("floor", 0, 5.0, 3.0), plain, replay, other_repeat]).splitlines()[2:]
    assert rows == ["| 10 | 100 ms | 8.0 / 10.0 | **1.25** | 5.0 / 7.5 | **1.50** | 4.0 / 6.0 | 20.0 |"]


def test_the_agent_comparison_shows_each_repeat_and_the_median_ratio_without_dead_agents() -> None:
    costs = [
        {
            "calls": 100,
            "raw_ms_per_call_s": r,
            "lib_ms_per_call_s": lib,
            "ratio": lib / r if r else float("nan"),
            "raw_frames": 50000,
            "lib_frames": 50000,
        }
        for r, lib in ((2.0, 1.8), (2.0, 2.4), (1.0, 0.95), (0.0, 2.0))  # the last raw agent died
    ]
    rows = agent_table(costs).splitlines()
    assert [r.split(" | ")[3] for r in rows[2:6]] == ["**0.90**", "**1.20**", "**0.95**", "**nan**"]
    assert rows[-1] == "Median library ÷ raw agent CPU: **0.95**"
