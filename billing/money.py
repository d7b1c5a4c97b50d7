"""Money as an integer number of paise (1 rupee = 100 paise), never a float."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Paise:
    """An amount of Indian rupees held as whole paise."""

    value: int
    """The amount in paise; may be negative for ledger entries (debits)."""

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise TypeError(f"paise must be an int, got {type(self.value).__name__}")

    @classmethod
    def rupees(cls, rupees: int) -> Paise:
        """Whole rupees to paise (`Paise.rupees(1000)` is ₹1,000)."""
        return cls(rupees * 100)

    def __add__(self, other: Paise) -> Paise:
        return Paise(self.value + other.value)

    def __sub__(self, other: Paise) -> Paise:
        return Paise(self.value - other.value)

    def __neg__(self) -> Paise:
        return Paise(-self.value)

    def __mul__(self, factor: int) -> Paise:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError("paise can only be multiplied by an int")
        return Paise(self.value * factor)

    __rmul__ = __mul__

    def __bool__(self) -> bool:
        return self.value != 0

    def __int__(self) -> int:
        return self.value

    def __str__(self) -> str:
        sign = "-" if self.value < 0 else ""
        rupees, paise = divmod(abs(self.value), 100)
        return f"{sign}₹{rupees}.{paise:02d}"


ZERO = Paise(0)
