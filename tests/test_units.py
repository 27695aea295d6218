"""Durations and sizes, as every command reads and prints them (simnet/units.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simnet import units


@pytest.mark.parametrize(
    "text, ns",
    [("5ms", 5_000_000), ("1.5s", 1_500_000_000), ("200us", 200_000), ("200µs", 200_000), ("7ns", 7),
     ("2", 2_000_000_000), (".25s", 250_000_000), ("0.3", 300_000_000), (" 1 ms ", 1_000_000), ("0", 0)],
)  # fmt: skip
def test_durations_read_exactly_in_ns(text: str, ns: int) -> None:
    assert units.parse_duration_ns(text) == ns


def test_durations_in_seconds_are_number_times_unit_as_the_commands_always_read_them() -> None:
    assert units.parse_duration("250us") == 250 * 1e-6
    assert units.parse_duration("1ms") == 1e-3 and units.parse_duration("2") == 2.0


@pytest.mark.parametrize("text", ["", "ms", "fast", "-1ms", "1e3ms", "1.2.3s", "5 parsecs", "2m", "inf", "nan"])
def test_bad_durations_name_the_text_and_show_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: expected a number with s, ms, us or ns, e\.g\. 1ms"):
        units.parse_duration_ns(text)
    with pytest.raises(ValueError, match="is not a duration"):
        units.parse_duration(text)


def test_a_positive_duration_refuses_zero() -> None:
    with pytest.raises(ValueError, match="expected a positive duration, not '0ms'"):
        units.parse_duration_ns("0ms", positive=True)


@pytest.mark.parametrize(
    "text, n",
    [("4096", 4096), ("64k", 65536), ("64K", 65536), ("64KiB", 65536), ("64kib", 65536), ("1m", 1 << 20),
     ("1MiB", 1 << 20), ("2g", 2 << 30), ("0", 0)],
)  # fmt: skip
def test_sizes_are_binary_multiples(text: str, n: int) -> None:
    assert units.parse_size(text) == n


@pytest.mark.parametrize("text", ["", "lots", "-3", "1.5k", "4096iB", "iB", "64kb!", "1t"])
def test_bad_sizes_name_the_text_and_show_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a size in bytes: .* e\.g\. 4096 or 64k"):
        units.parse_size(text)


def test_a_positive_size_refuses_zero() -> None:
    with pytest.raises(ValueError, match="expected a positive number of bytes, not '0k'"):
        units.parse_size("0k", positive=True)


@pytest.mark.parametrize(
    "ns, text", [(1_500_000_000, "1.5s"), (5_000_000, "5ms"), (250_000, "250us"), (7, "7ns"), (0, "0ns"),
                 (60_000_000_000, "60s"), (1_000_001, "1.000001ms")],
)  # fmt: skip
def test_durations_print_in_the_largest_unit_they_reach(ns: int, text: str) -> None:
    assert units.format_duration(ns) == text


@pytest.mark.parametrize("n, text", [(65536, "64KiB"), (1 << 20, "1MiB"), (3 << 30, "3GiB"), (4097, "4097"), (0, "0")])
def test_sizes_print_as_binary_multiples_when_one_divides_them(n: int, text: str) -> None:
    assert units.format_size(n) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_a_printed_duration_reads_back_as_itself(ns: int) -> None:
    assert units.parse_duration_ns(units.format_duration(ns)) == ns


@given(st.integers(min_value=0, max_value=1 << 50))
def test_a_printed_size_reads_back_as_itself(n: int) -> None:
    assert units.parse_size(units.format_size(n)) == n


@given(st.sampled_from([1, 1 << 10, 1 << 20, 1 << 30]), st.integers(min_value=0, max_value=1 << 20))
def test_multiples_print_with_their_unit_and_read_back(scale: int, k: int) -> None:
    assert units.parse_size(units.format_size(k * scale)) == k * scale


def test_off_words() -> None:
    assert units.is_off("off") and units.is_off(" None ") and not units.is_off("0")
