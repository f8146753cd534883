"""The one KEY=VALUE parser behind render's --column-map/--data-file, mix's --task, train's -o."""

from __future__ import annotations

import pytest

from instructkit.keyvalue import key_value


@pytest.mark.parametrize(
    ("text", "strip", "expected"),
    [
        ("a=b", False, ("a", "b")),
        ("a=b=c", False, ("a", "b=c")),
        ("a=", False, ("a", "")),
        (" a = b ", False, (" a ", " b ")),
        (" a = b ", True, ("a", "b")),
        ("=b", False, None),
        (" =b", True, None),
        ("ab", False, None),
    ],
)
def test_key_value(text, strip, expected):
    assert key_value(text, strip) == expected
