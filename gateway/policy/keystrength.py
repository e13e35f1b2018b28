"""How strong is a shared secret typed into a config file? A simple, documented estimate.

The admin key is a bearer secret that can do everything, so a guessable one
is refused at start. The estimate is deliberately crude and errs towards
refusing patterns a person would type:

* every character costs ``log2(alphabet)`` bits, where the alphabet is 16
  when the key is all hex digits, else the sum of the classes it uses
  (26 lower, 26 upper, 10 digits, 33 other printable ASCII);
* a character is free (0 bits) when it is *predictable*: it continues an
  arithmetic run of code points with the two before it (``aaa``, ``abc``,
  ``135``), or the three characters ending with it already occurred earlier
  in the key (a repeated word or block);
* a key needs at least :data:`MIN_LENGTH` characters and :data:`MIN_BITS`
  estimated bits.

So ``openssl rand -hex 24`` (48 hex digits, about 180 bits by this count)
and ``openssl rand -base64 24`` pass; ``aaaa...``, ``0123456789abcdef`` twice
and ``password`` four times do not. (32 hex digits are exactly 128 bits at
best and fail on the first predictable character: use 24 bytes or more.)
"""

from __future__ import annotations

import math
import string

MIN_LENGTH = 32
MIN_BITS = 128.0
HOW_TO_MAKE_ONE = "make one with `openssl rand -hex 32`"

_HEX = frozenset(string.hexdigits)
_CLASSES = (
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.digits), 10),
)
_OTHER = 33  # printable ASCII that is neither letter nor digit, space included


def alphabet_size(key: str) -> int:
    """The alphabet the key seems drawn from (see the module docstring)."""
    chars = set(key)
    if chars <= _HEX and (chars.isdisjoint(string.ascii_lowercase)
                          or chars.isdisjoint(string.ascii_uppercase)):
        return 16
    size = sum(n for cls, n in _CLASSES if not chars.isdisjoint(cls))
    if any(c not in string.ascii_letters and c not in string.digits for c in chars):
        size += _OTHER
    return max(size, 2)


def unpredictable_chars(key: str) -> int:
    """How many characters neither continue a run nor repeat an earlier trigram."""
    count = 0
    seen: set[str] = set()
    for i, char in enumerate(key):
        predictable = False
        if i >= 2:
            a, b, c = ord(key[i - 2]), ord(key[i - 1]), ord(char)
            trigram = key[i - 2:i + 1]
            predictable = b - a == c - b or trigram in seen
            seen.add(trigram)
        if not predictable:
            count += 1
    return count


def estimated_bits(key: str) -> float:
    """The key's estimated entropy in bits."""
    return unpredictable_chars(key) * math.log2(alphabet_size(key))


def key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak to be a bearer secret, or None if it is strong enough."""
    if len(key) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters (got {len(key)}); {HOW_TO_MAKE_ONE}"
    if not key.isascii() or not key.isprintable() or key.strip() != key:
        return f"must be printable ASCII without surrounding spaces; {HOW_TO_MAKE_ONE}"
    bits = estimated_bits(key)
    if bits < MIN_BITS:
        return (f"too easy to guess (about {bits:.0f} bits of entropy, at least "
                f"{MIN_BITS:.0f} needed: no repeats, runs or words); {HOW_TO_MAKE_ONE}")
    return None
