"""Fault schedule files: TOML and JSON load into the FaultSchedule they describe, and every
mistake is one line naming the file and where in it (`file:line` for a syntax error,
`file: section[i]: field: problem` for a bad value), which `simnet run --faults` prints as is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simnet.faults import (
    Crash,
    FaultSchedule,
    Hold,
    InjectRst,
    Jitter,
    LinkFaults,
    Partition,
    ShortIO,
    load_schedule,
    parse_jitter,
)

EVERY_SECTION_TOML = """\
# Every section, and each form a jitter may take.
[[links]]
loss = 0.01
duplicate = 0.02
reorder = 0.03
reorder_delay = 0.004
jitter = ["uniform", 0, 0.002]

[[links]]
src = "10.0.1.1"
dst = "10.0.0.1"
both_ways = false
jitter = { distribution = "normal", params = [0.001, 0.0005] }

[[partitions]]
a = "10.0.1.1"
b = "10.0.0.1"
start = 1.0
end = 2.5

[[partitions]]
a = "10.0.1.2"
b = "10.0.0.1"
start = 3
one_way = true

[[holds]]
a = "10.0.1.1"
b = "10.0.0.1"
start = 0.5
end = 0.7

[[rsts]]
at = 2.0
host = "10.0.0.1"
nth = 3
one_sided = true

[[crashes]]
host = "10.0.1.3"
at = 4.0
restart_after = 1.5

[[short_io]]
recv = 0.2
send = 0.1
spurious_wakeup = 0.05

[[short_io]]
host = "10.0.1.1"
recv = 0.5
"""

EVERY_SECTION = FaultSchedule(
    links=[
        LinkFaults(loss=0.01, duplicate=0.02, reorder=0.03, reorder_delay=0.004,
                   jitter=Jitter(distribution="uniform", params=(0, 0.002))),
        LinkFaults(src="10.0.1.1", dst="10.0.0.1", both_ways=False,
                   jitter=Jitter(distribution="normal", params=(0.001, 0.0005))),
    ],
    partitions=[
        Partition(a="10.0.1.1", b="10.0.0.1", start=1.0, end=2.5),
        Partition(a="10.0.1.2", b="10.0.0.1", start=3, one_way=True),
    ],
    holds=[Hold(a="10.0.1.1", b="10.0.0.1", start=0.5, end=0.7)],
    rsts=[InjectRst(at=2.0, host="10.0.0.1", nth=3, one_sided=True)],
    crashes=[Crash(host="10.0.1.3", at=4.0, restart_after=1.5)],
    short_io=[ShortIO(recv=0.2, send=0.1, spurious_wakeup=0.05), ShortIO(host="10.0.1.1", recv=0.5)],
)  # fmt: skip


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_schedule_loads_every_section(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, "faults.toml", EVERY_SECTION_TOML))
    assert schedule == EVERY_SECTION
    assert schedule.links[1].matches("10.0.1.1", "10.0.0.1") and not schedule.links[1].matches("10.0.0.1", "10.0.1.1")
    assert schedule.partitions[1].end is None  # no end: for ever


def test_a_json_schedule_loads_the_same(tmp_path: Path) -> None:
    import tomllib

    obj = tomllib.loads(EVERY_SECTION_TOML)
    assert load_schedule(write(tmp_path, "faults.json", json.dumps(obj, indent=2))) == EVERY_SECTION


def test_a_single_table_counts_as_a_list_of_one(tmp_path: Path) -> None:
    path = write(tmp_path, "one.toml", '[crashes]\nhost = "10.0.1.1"\nat = 2\n')
    assert load_schedule(path) == FaultSchedule(crashes=[Crash(host="10.0.1.1", at=2)])


def test_an_empty_file_is_the_empty_schedule(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, "none.toml", "# nothing today\n"))
    assert schedule == FaultSchedule() and schedule.empty


def test_a_schedule_round_trips_through_its_json_form(tmp_path: Path) -> None:
    plain = EVERY_SECTION.to_json()
    assert FaultSchedule.from_json(json.loads(json.dumps(plain))) == EVERY_SECTION
    # Defaults are left out, so a file written from it says only what differs.
    assert plain["links"][1] == {"src": "10.0.1.1", "dst": "10.0.0.1", "both_ways": False,
                                 "jitter": ["normal", 0.001, 0.0005]}  # fmt: skip
    assert plain["short_io"][1] == {"host": "10.0.1.1", "recv": 0.5}
    assert load_schedule(write(tmp_path, "again.json", json.dumps(plain))) == EVERY_SECTION
    assert FaultSchedule().to_json() == {}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("uniform:0:2ms", Jitter(distribution="uniform", params=(0.0, 0.002))),
        ("exponential:1ms", Jitter(distribution="exponential", params=(0.001,))),
        ("normal:1ms:500us", Jitter(distribution="normal", params=(0.001, 0.0005))),
        ("constant:3ms", Jitter(distribution="constant", params=(0.003,))),
        ("constant:0.25", Jitter(distribution="constant", params=(0.25,))),
        (["uniform", 0, 0.002], Jitter(distribution="uniform", params=(0, 0.002))),
    ],
)
def test_jitter_is_spelled_as_the_command_line_or_a_file_spells_it(text: object, expected: Jitter) -> None:
    got = parse_jitter(text)
    assert got.distribution == expected.distribution
    assert got.params == pytest.approx(expected.params)


# -- mistakes: one line each, naming the file and where ------------------------------------------


@pytest.mark.parametrize(
    "name, text, where, problem",
    [
        ("section.toml", "[[bogus]]\nx = 1\n", "", "unknown section 'bogus'"),
        ("field.toml", "[[links]]\nlos = 0.1\n", ": links[0]", "unknown field 'los'"),
        ("rate.toml", "[[links]]\nloss = 0.1\n[[links]]\nreorder = 1.5\n", ": links[1]", "reorder: a probability between 0 and 1"),
        ("negative.json", '{"links": [{"duplicate": -0.1}]}', ": links[0]", "duplicate: a probability"),
        ("short.toml", "[[short_io]]\nsend = 1.0\n", ": short_io[0]", "send: must be below 1"),
        ("dist.toml", '[[links]]\njitter = ["gaussian", 1]\n', ": links[0]", "jitter: unknown distribution 'gaussian'"),
        ("arity.toml", '[[links]]\njitter = ["uniform", 1]\n', ": links[0]", "jitter: uniform takes 2 parameters"),
        ("order.toml", '[[links]]\njitter = ["uniform", 2, 1]\n', ": links[0]", "jitter: uniform needs low <= high"),
        ("end.toml", '[[partitions]]\na = "10.0.0.1"\nb = "10.0.0.2"\nstart = 3\nend = 1\n', ": partitions[0]",
         "end: before start"),
        ("hold.json", '{"holds": [{"a": "10.0.0.1", "b": "10.0.0.2", "start": 1}]}', ": holds[0]", "missing 'end'"),
        ("ip.toml", '[[crashes]]\nhost = "server"\nat = 1\n', ": crashes[0]", "host: not an IPv4 address"),
        ("time.toml", '[[rsts]]\nat = -1\nhost = "10.0.0.1"\n', ": rsts[0]", "at: a time in seconds >= 0"),
        ("nth.toml", '[[rsts]]\nat = 1\nhost = "10.0.0.1"\nnth = 0\n', ": rsts[0]", "nth"),
        ("list.json", "[1, 2]", "", "a fault schedule is a table/object"),
        ("links.json", '{"links": 5}', "", "links: a list of tables"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_the_file_section_and_field(
    tmp_path: Path, name: str, text: str, where: str, problem: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError) as caught:
        load_schedule(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{where}: "), message
    assert problem in message


@pytest.mark.parametrize(
    "name, text, line",
    [
        ("syntax.toml", "[[links]]\nloss = 0.1\nreorder = \n", 3),
        ("unclosed.toml", '[[links]]\nloss = 0.1\n[[partitions]\na = "10.0.0.1"\n', 3),
        ("syntax.json", '{"links": [\n  {"loss": 0.1,}\n]}\n', 2),
        ("truncated.json", '{"links": [\n', 2),
    ],
)
def test_a_syntax_error_is_one_line_naming_the_file_and_line(tmp_path: Path, name: str, text: str, line: int) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError) as caught:
        load_schedule(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message


def test_a_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ValueError, match=r"nowhere\.toml: No such file") as caught:
        load_schedule(path)
    assert "\n" not in str(caught.value)
