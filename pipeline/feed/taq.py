"""NYSE TAQ letters -> Polygon/Massive numeric exchange ids and trade condition codes (pure).

Plain trade CSVs such as the shipped highfrequency sample carry TAQ's one-letter
participant ids and up to four TAQ sale-condition letters; the Polygon/Massive feed
carries integers. The tables below translate one into the other.

Exchanges (TAQ participant letter -> Polygon ``/v3/reference/exchanges`` id)::

    A NYSE American  1    J Cboe EDGA      7    T Nasdaq         12
    B Nasdaq BX      2    K Cboe EDGX      8    Q Nasdaq (alias) 12
    C NYSE National  3    M NYSE Chicago   9    V IEX            15
    D FINRA ADF/TRF  4    N NYSE          10    W Cboe (CBSX)    16
    I ISE            6    P NYSE Arca     11    X Nasdaq PSX     17
    H MIAX Pearl    20    U MEMX          21    Y Cboe BYX       18
                                                Z Cboe BZX       19

Source: Polygon's stocks exchange list (id, MIC, participant letter) as returned by the
exchanges endpoint and recorded in independent clients (e.g. febrd/polygon.ex
``RESULT/exchanges.ex``). TAQ prints on FINRA (``D``) do not say which TRF reported them,
so ``trf_id`` stays unknown (None) for them. A letter not in the table maps to exchange
``0`` (not a Polygon venue id: "unknown") and is counted by the file reader.

Sale conditions (TAQ/CTA-UTP letter -> Polygon condition id), from the "SIP mapping"
column of Polygon's trade-conditions table (https://polygon.io/glossary/us/stocks/
conditions-indicators, as transcribed in QuantConnect's ``PolygonSIPTradeMappings``)::

    @ regular sale        (no code)  K Rule 155 (AMEX)      23
    A Acquisition                 1  L Sold Last            30
    B Bunched Trade               4  M MC Official Close    15
    C Cash Sale                   7  N Next Day             20
    D Distribution               11  O Opening Prints       25
    F Intermarket Sweep          14  P Prior Reference Px   22
    G Bunched Sold Trade          5  Q MC Official Open     16
    H Price Variation Trade      21  R Seller               29
    I Odd Lot Trade              37  S Split Trade          34
    T Form T (extended hours)    12  U Ext. Hours Sold OOS  13
    V Contingent Trade           52  W Average Price Trade   2
    X Cross Trade                 9  Y Yellow Flag          36
    Z Sold (Out of Sequence)     33  1 Stopped Stock        27
    4 Derivatively Priced        10  5 Re-Opening Prints    28
    6 Closing Prints              8  7 Qualified Contingent 53
    8 611 Exempt placeholder     59  9 Corrected Cons. Close 38

``@`` (and blanks) mean a regular sale: the feed then sends no ``c`` at all, so it maps
to no code. Letters not in the table (e.g. ``E``, whose Polygon row is a placeholder)
are dropped from the list and counted by the file reader; the print itself is kept.
The order of codes follows the order of letters.
"""

from __future__ import annotations

TAQ_EXCHANGE_TO_POLYGON: dict[str, int] = {
    "A": 1,
    "B": 2,
    "C": 3,
    "D": 4,
    "I": 6,
    "J": 7,
    "K": 8,
    "M": 9,
    "N": 10,
    "P": 11,
    "T": 12,
    "Q": 12,
    "V": 15,
    "W": 16,
    "X": 17,
    "Y": 18,
    "Z": 19,
    "H": 20,
    "U": 21,
}

UNKNOWN_EXCHANGE = 0

TAQ_CONDITION_TO_POLYGON: dict[str, int] = {
    "A": 1,
    "W": 2,
    "B": 4,
    "G": 5,
    "C": 7,
    "6": 8,
    "X": 9,
    "4": 10,
    "D": 11,
    "T": 12,
    "U": 13,
    "F": 14,
    "M": 15,
    "Q": 16,
    "N": 20,
    "H": 21,
    "P": 22,
    "K": 23,
    "O": 25,
    "1": 27,
    "5": 28,
    "R": 29,
    "L": 30,
    "Z": 33,
    "S": 34,
    "Y": 36,
    "I": 37,
    "9": 38,
    "V": 52,
    "7": 53,
    "8": 59,
}

_REGULAR = frozenset({"@", " "})


def map_exchange(letter: str) -> int | None:
    """Return the Polygon exchange id of a TAQ participant letter, None if unknown."""
    return TAQ_EXCHANGE_TO_POLYGON.get(letter.strip().upper())


def map_conditions(letters: str) -> tuple[tuple[int, ...], str]:
    """Translate a TAQ sale-condition field into Polygon condition codes.

    Parameters
    ----------
    letters
        The TAQ field, e.g. ``"F I"``, ``"4 B"``, ``"@"`` or ``""``.

    Returns
    -------
    tuple[tuple[int, ...], str]
        The codes in letter order, and the letters that have no mapping (empty if none).
    """
    codes: list[int] = []
    unmapped: list[str] = []
    for ch in letters:
        if ch in _REGULAR:
            continue
        code = TAQ_CONDITION_TO_POLYGON.get(ch)
        if code is None:
            unmapped.append(ch)
        elif code not in codes:
            codes.append(code)
    return tuple(codes), "".join(unmapped)
