"""Phonetic keys for names: American Soundex, implemented here (a dozen lines, no dependency). Pure.

Soundex keeps the first letter and codes the following consonants by how they sound, so ``smith`` and
``smyth`` share ``S530``. It blocks and compares names that typists and speakers spell differently; it is
one signal among several (exact, Jaro-Winkler), never a match on its own.
"""

from __future__ import annotations

from typing import Final

__all__ = ["soundex"]

_CODES: Final = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}
_TRANSPARENT: Final = frozenset("hw")  # letters that do not separate two equal codes (vowels do)


def soundex(name: str) -> str | None:
    """The four-character Soundex code of ``name`` (letters a-z only count), or None without any letter."""
    letters = [ch for ch in name.lower() if "a" <= ch <= "z"]
    if not letters:
        return None
    first = letters[0]
    digits: list[str] = []
    previous = _CODES.get(first, "")
    for ch in letters[1:]:
        code = _CODES.get(ch, "")
        if code and code != previous:
            digits.append(code)
            if len(digits) == 3:
                break
        if ch not in _TRANSPARENT:
            previous = code
    return (first.upper() + "".join(digits)).ljust(4, "0")
