"""A strict stand-in for Vertica's ``vertica_sdk`` module, for driving Python UDxs in tests.

``vertica_sdk`` exists only inside a Vertica server's fenced Python process, and no Vertica
server can run here (the Community Edition images were withdrawn in 2025 and no emulator
exists), so the tests load ``udx/vertica/batch_microstructure.py`` against this module
instead. It follows the Python SDK reference class by class, with the same method names and
argument orders:

- Vertica Python UDx SDK reference, https://www.vertica.com/docs/11.0.x/HTML/PythonSDK/
  (``TransformFunction``, ``TransformFunctionFactory``, ``PartitionReader``,
  ``PartitionWriter``, ``ColumnTypes``, ``SizedColumnTypes``, ``VerticaType``,
  ``ServerInterface``, ``ParamReader``) and its 10.0.x twin for ``PartitionReader``;
- "Transform functions (UDTFs)", https://docs.vertica.com/24.2.x/en/extending/developing-udxs/
  transform-functions-udtfs/ ("each row it outputs must be complete. Advancing to the next
  row without having added a value for each column produces incorrect results");
- the Python SDK overview, https://docs.vertica.com/24.4.x/en/extending/developing-udxs/
  developing-with-sdk/python-sdk (fenced, bundled interpreter, type mapping INTEGER -> int,
  FLOAT -> float, VARCHAR -> str);
- the shape of public Python UDTFs: bryanherger/vertica-python-fft ``pyFFT.py``
  (``getPrototype`` / ``getReturnType`` with ``addColumn(arg_types.getColumnType(i), name)``,
  read with ``getFloat`` then ``if not input.next(): break``) and vertica/UDx-Examples
  ``Python/``.

Where the server's behaviour is unspecified or undocumented, the stand-in is *stricter*,
so that a UDx passing here does not depend on luck there:

- reading a NULL through ``getInt``/``getFloat``/``getString``/``getBool`` raises (test
  ``isNull`` first); reading a column with the getter of another type raises;
- reading after ``next()`` returned False, or calling ``next()`` again, raises;
- ``getNumRows()`` is the size of the current *block* (the reader fetches "a block at a time",
  default 1024 rows here), never the partition size, so code that sizes arrays by it breaks;
- ``PartitionWriter.next()`` raises unless every output column of the row was set (a value
  or ``setNull``); a half-written row left at the end of ``processPartition`` raises;
- setters check the declared column type and the Python type exactly: ``setInt`` takes an
  ``int`` (not ``bool``, not ``numpy.int64``, not ``float``), ``setFloat`` a ``float``
  (``numpy.float64`` is one), ``setBool`` a ``bool`` (not ``numpy.bool_``), ``setString`` a
  ``str`` no longer (in UTF-8 bytes) than the declared ``VARCHAR`` size; INT values must be
  inside Vertica's 64-bit range, whose minimum is reserved for NULL;
- the harness :func:`run_transform` checks ``getPrototype`` against the argument types of the
  call and against ``getReturnType`` (count, types, unique non-empty names), never calls
  ``processPartition`` on an empty partition (Vertica has none) and reuses one function
  object for every partition, as a node does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ColumnTypes",
    "ParamReader",
    "PartitionReader",
    "PartitionWriter",
    "ServerInterface",
    "SizedColumnTypes",
    "StandInError",
    "TransformFunction",
    "TransformFunctionFactory",
    "TransformResult",
    "UdfException",
    "VerticaType",
    "over",
    "run_transform",
]

INT_MIN = -(2**63) + 1  # -2**63 is Vertica's NULL for INTEGER
INT_MAX = 2**63 - 1
VARCHAR_MAX = 65000
LONG_VARCHAR_MAX = 32_000_000


class StandInError(AssertionError):
    """A misuse of the SDK that the real server would reject or silently get wrong."""


class UdfException(Exception):
    """The exception a UDx raises to fail the query (``vertica_sdk.UdfException``)."""

    def __init__(self, errcode: int, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message


# ---------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True)
class VerticaType:
    """Column type metadata (``vertica_sdk.VerticaType``)."""

    name: str  # INTEGER | FLOAT | BOOLEAN | VARCHAR | LONG VARCHAR | DATE | TIMESTAMP | NUMERIC
    length: int | None = None  # VARCHAR size in bytes

    def isInt(self) -> bool:
        return self.name == "INTEGER"

    def isFloat(self) -> bool:
        return self.name == "FLOAT"

    def isBool(self) -> bool:
        return self.name == "BOOLEAN"

    def isVarchar(self) -> bool:
        return self.name == "VARCHAR"

    def isLongVarchar(self) -> bool:
        return self.name == "LONG VARCHAR"

    def isStringType(self) -> bool:
        return self.name in {"VARCHAR", "LONG VARCHAR"}

    def getStringLength(self, check_type: bool = True) -> int:
        if check_type and not self.isStringType():
            raise StandInError(f"getStringLength on a {self.name} column")
        return int(self.length or 0)

    def getMaxSize(self) -> int:
        return int(self.length) if self.isStringType() and self.length else 8

    def getPrettyPrintStr(self) -> str:
        return f"{self.name}({self.length})" if self.isStringType() else self.name


INTEGER = VerticaType("INTEGER")
FLOAT = VerticaType("FLOAT")
BOOLEAN = VerticaType("BOOLEAN")
DATE = VerticaType("DATE")
TIMESTAMP = VerticaType("TIMESTAMP")
NUMERIC = VerticaType("NUMERIC")


def varchar(length: int = 80) -> VerticaType:
    """Return a ``VARCHAR(length)`` type (Vertica's default VARCHAR size is 80)."""
    if not 1 <= length <= VARCHAR_MAX:
        raise StandInError(f"VARCHAR size is {length} and must be in 1..{VARCHAR_MAX}")
    return VerticaType("VARCHAR", length)


class ColumnTypes:
    """Unsized column types, as filled by ``getPrototype`` (``vertica_sdk.ColumnTypes``)."""

    def __init__(self) -> None:
        self._types: list[str] = []

    def _add(self, name: str) -> None:
        self._types.append(name)

    def addInt(self) -> None:
        self._add("INTEGER")

    def addFloat(self) -> None:
        self._add("FLOAT")

    def addBool(self) -> None:
        self._add("BOOLEAN")

    def addVarchar(self) -> None:
        self._add("VARCHAR")

    def addLongVarchar(self) -> None:
        self._add("LONG VARCHAR")

    def addDate(self) -> None:
        self._add("DATE")

    def addTimestamp(self) -> None:
        self._add("TIMESTAMP")

    def addNumeric(self) -> None:
        self._add("NUMERIC")

    def addAny(self) -> None:
        self._add("ANY")

    def getColumnCount(self) -> int:
        return len(self._types)

    @property
    def names(self) -> list[str]:
        """Type names in order (stand-in helper, not SDK API)."""
        return list(self._types)


class SizedColumnTypes:
    """Sized, named column types (``vertica_sdk.SizedColumnTypes``)."""

    def __init__(self, columns: Iterable[tuple[VerticaType, str]] = ()) -> None:
        self._cols: list[tuple[VerticaType, str]] = list(columns)

    def addColumn(self, vt: VerticaType, field_name: str = "") -> None:
        if not isinstance(vt, VerticaType):
            raise StandInError(f"addColumn takes a VerticaType, got {type(vt).__name__}")
        self._cols.append((vt, field_name))

    def addInt(self, field_name: str = "") -> None:
        self.addColumn(INTEGER, field_name)

    def addFloat(self, field_name: str = "") -> None:
        self.addColumn(FLOAT, field_name)

    def addBool(self, field_name: str = "") -> None:
        self.addColumn(BOOLEAN, field_name)

    def addDate(self, field_name: str = "") -> None:
        self.addColumn(DATE, field_name)

    def addVarchar(self, size: int, field_name: str = "") -> None:
        if not isinstance(size, int) or isinstance(size, bool):
            raise StandInError(f"addVarchar size must be an int, got {size!r}")
        self.addColumn(varchar(size), field_name)

    def addLongVarchar(self, size: int, field_name: str = "") -> None:
        if not 1 <= size <= LONG_VARCHAR_MAX:
            raise StandInError(f"LONG VARCHAR size is {size} and must be in 1..{LONG_VARCHAR_MAX}")
        self.addColumn(VerticaType("LONG VARCHAR", size), field_name)

    def getColumnCount(self) -> int:
        return len(self._cols)

    def getColumnType(self, idx: int) -> VerticaType:
        return self._cols[_index(idx, len(self._cols), "column")][0]

    def getColumnName(self, idx: int) -> str:
        return self._cols[_index(idx, len(self._cols), "column")][1]

    @property
    def columns(self) -> list[tuple[VerticaType, str]]:
        """``(type, name)`` pairs in order (stand-in helper, not SDK API)."""
        return list(self._cols)


def _index(idx: object, n: int, what: str) -> int:
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise StandInError(f"{what} index must be an int, got {idx!r}")
    if not 0 <= idx < n:
        raise StandInError(f"{what} index {idx} is outside 0..{n - 1}")
    return idx


# ---------------------------------------------------------------------------------------------
# Server interface and parameters


class ParamReader:
    """Named ``USING PARAMETERS`` values (``vertica_sdk.ParamReader``)."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = dict(values or {})

    def containsParameter(self, name: str) -> bool:
        return name in self._values

    def getParamNames(self) -> list[str]:
        return list(self._values)

    def _get(self, name: str, kind: type) -> Any:
        if name not in self._values:
            raise StandInError(
                f"parameter {name!r} was not supplied (test containsParameter first)"
            )
        value = self._values[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise StandInError(f"parameter {name!r} is {value!r}, not {kind.__name__}")
        return value

    def getInt(self, name: str) -> int:
        return self._get(name, int)

    def getFloat(self, name: str) -> float:
        return self._get(name, float)

    def getString(self, name: str) -> str:
        return self._get(name, str)

    def getBool(self, name: str) -> bool:
        return self._get(name, bool)


class ServerInterface:
    """Access to the server from a UDx (``vertica_sdk.ServerInterface``); logs are kept."""

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        node_name: str = "v_micro_node0001",
        database_name: str = "micro",
        user_name: str = "dbadmin",
    ) -> None:
        self.logs: list[str] = []
        self._params = ParamReader(params)
        self._node = node_name
        self._db = database_name
        self._user = user_name

    def log(self, message: str) -> None:
        if not isinstance(message, str):
            raise StandInError(f"log takes a str, got {type(message).__name__}")
        self.logs.append(message)

    def getParamReader(self) -> ParamReader:
        return self._params

    def getNodeName(self) -> str:
        return self._node

    def getDatabaseName(self) -> str:
        return self._db

    def getUserName(self) -> str:
        return self._user

    def getLocale(self) -> str:
        return "en_US@collation=binary"


# ---------------------------------------------------------------------------------------------
# Reader and writer


def _check_value(vt: VerticaType, value: object, where: str) -> None:
    """Raise unless ``value`` is a legal Python value for a column of type ``vt``."""
    if value is None:
        return
    if vt.isInt():
        if not isinstance(value, int) or isinstance(value, bool):
            raise StandInError(
                f"{where}: INTEGER takes an int, got {type(value).__name__} {value!r}"
            )
        if not INT_MIN <= value <= INT_MAX:
            raise StandInError(f"{where}: {value} is outside Vertica's INTEGER range")
    elif vt.isFloat():
        if not isinstance(value, float):
            raise StandInError(
                f"{where}: FLOAT takes a float, got {type(value).__name__} {value!r}"
            )
    elif vt.isBool():
        if type(value) is not bool:
            raise StandInError(
                f"{where}: BOOLEAN takes a bool, got {type(value).__name__} {value!r}"
            )
    elif vt.isStringType():
        if not isinstance(value, str):
            raise StandInError(
                f"{where}: {vt.name} takes a str, got {type(value).__name__} {value!r}"
            )
        n = len(value.encode("utf-8"))
        if vt.length is not None and n > vt.length:
            raise StandInError(f"{where}: {n} bytes do not fit {vt.getPrettyPrintStr()}")
    else:
        raise StandInError(f"{where}: the stand-in does not model {vt.name} values")


class PartitionReader:
    """Iterator over one partition's rows (``vertica_sdk.PartitionReader``).

    Starts on row 0. Rows arrive in blocks of ``block_size``; ``getNumRows`` reports the
    current block, as the SDK's reader that "fetches data a block at a time".
    """

    def __init__(
        self, types: SizedColumnTypes, rows: Sequence[Sequence[object]], block_size: int = 1024
    ) -> None:
        if not rows:
            raise StandInError("Vertica never calls processPartition on an empty partition")
        ncols = types.getColumnCount()
        for r, row in enumerate(rows):
            if len(row) != ncols:
                raise StandInError(f"input row {r} has {len(row)} values for {ncols} columns")
            for c, value in enumerate(row):
                _check_value(types.getColumnType(c), value, f"input row {r} column {c}")
        self._types = types
        self._rows = rows
        self._block = max(1, block_size)
        self._pos = 0
        self._done = False

    def _value(self, idx: int, getter: str, check: Callable[[VerticaType], bool]) -> Any:
        if self._done:
            raise StandInError(f"{getter}({idx}) after next() returned False: read past the end")
        vt = self._types.getColumnType(idx)
        if not check(vt):
            raise StandInError(f"{getter}({idx}) on a {vt.getPrettyPrintStr()} column")
        value = self._rows[self._pos][idx]
        if value is None:
            raise StandInError(
                f"{getter}({idx}) on a NULL at partition row {self._pos}: test isNull first"
            )
        return value

    def getInt(self, idx: int) -> int:
        return self._value(idx, "getInt", VerticaType.isInt)

    def getFloat(self, idx: int) -> float:
        return self._value(idx, "getFloat", VerticaType.isFloat)

    def getBool(self, idx: int) -> bool:
        return self._value(idx, "getBool", VerticaType.isBool)

    def getString(self, idx: int) -> str:
        return self._value(idx, "getString", VerticaType.isStringType)

    def isNull(self, idx: int) -> bool:
        if self._done:
            raise StandInError(f"isNull({idx}) after next() returned False: read past the end")
        _index(idx, self._types.getColumnCount(), "column")
        return self._rows[self._pos][idx] is None

    def next(self) -> bool:
        """Advance to the next row; False (once) when the partition is exhausted."""
        if self._done:
            raise StandInError("next() called again after it returned False")
        if self._pos + 1 >= len(self._rows):
            self._done = True
            return False
        self._pos += 1
        return True

    def hasMoreData(self) -> bool:
        return not self._done and self._pos + 1 < len(self._rows)

    def getNumCols(self) -> int:
        return self._types.getColumnCount()

    def getNumRows(self) -> int:
        start = (self._pos // self._block) * self._block
        return min(self._block, len(self._rows) - start)

    def getTypeMetaData(self) -> SizedColumnTypes:
        return self._types

    getTypeMetadata = getTypeMetaData


_UNSET = object()


class PartitionWriter:
    """Row-at-a-time output of one partition (``vertica_sdk.PartitionWriter``)."""

    def __init__(self, types: SizedColumnTypes) -> None:
        self._types = types
        self._row: list[object] = [_UNSET] * types.getColumnCount()
        self.rows: list[tuple[object, ...]] = []

    def _set(
        self, idx: int, value: object, setter: str, check: Callable[[VerticaType], bool]
    ) -> None:
        i = _index(idx, self._types.getColumnCount(), "output column")
        vt = self._types.getColumnType(i)
        name = self._types.getColumnName(i)
        if not check(vt):
            raise StandInError(
                f"{setter}({idx}) on output column {name!r} of type {vt.getPrettyPrintStr()}"
            )
        _check_value(vt, value, f"{setter}({idx}) {name!r}")
        self._row[i] = value

    def setInt(self, idx: int, value: int) -> None:
        self._set(idx, value, "setInt", VerticaType.isInt)

    def setFloat(self, idx: int, value: float) -> None:
        self._set(idx, value, "setFloat", VerticaType.isFloat)

    def setBool(self, idx: int, value: bool) -> None:
        self._set(idx, value, "setBool", VerticaType.isBool)

    def setString(self, idx: int, value: str) -> None:
        self._set(idx, value, "setString", VerticaType.isStringType)

    def setNull(self, idx: int) -> None:
        i = _index(idx, self._types.getColumnCount(), "output column")
        self._row[i] = None

    def copyFromInput(self, dstCol: int, partition_reader: PartitionReader, srcCol: int) -> None:
        src = partition_reader.getTypeMetaData().getColumnType(srcCol)
        dst = self._types.getColumnType(
            _index(dstCol, self._types.getColumnCount(), "output column")
        )
        if src.name != dst.name:
            raise StandInError(f"copyFromInput from {src.name} into {dst.name}")
        if partition_reader.isNull(srcCol):
            self.setNull(dstCol)
        else:
            getter = {"INTEGER": "getInt", "FLOAT": "getFloat", "BOOLEAN": "getBool"}.get(
                src.name, "getString"
            )
            self._row[dstCol] = getattr(partition_reader, getter)(srcCol)

    def next(self) -> bool:
        """Emit the current row; every column must have been set."""
        missing = [
            self._types.getColumnName(i) or str(i) for i, v in enumerate(self._row) if v is _UNSET
        ]
        if missing:
            raise StandInError(
                f"output row {len(self.rows)} advanced with columns not set: {missing}"
            )
        self.rows.append(tuple(self._row))
        self._row = [_UNSET] * self._types.getColumnCount()
        return True

    def getNumCols(self) -> int:
        return self._types.getColumnCount()

    def getTypeMetaData(self) -> SizedColumnTypes:
        return self._types

    getTypeMetadata = getTypeMetaData

    def pending(self) -> list[str]:
        """Names of columns set in an unfinished row (stand-in helper, not SDK API)."""
        return [self._types.getColumnName(i) for i, v in enumerate(self._row) if v is not _UNSET]


# ---------------------------------------------------------------------------------------------
# UDx base classes


class TransformFunction:
    """Base class of a UDTF (``vertica_sdk.TransformFunction``)."""

    def setup(self, server_interface: ServerInterface, col_types: SizedColumnTypes) -> None:
        """Run once before the first partition."""

    def processPartition(
        self,
        server_interface: ServerInterface,
        partition_reader: PartitionReader,
        partition_writer: PartitionWriter,
    ) -> None:
        raise NotImplementedError

    def destroy(self, server_interface: ServerInterface, col_types: SizedColumnTypes) -> None:
        """Run once after the last partition."""


class TransformFunctionFactory:
    """Base class of a UDTF factory (``vertica_sdk.TransformFunctionFactory``)."""

    def getPrototype(
        self, server_interface: ServerInterface, arg_types: ColumnTypes, return_type: ColumnTypes
    ) -> None:
        raise NotImplementedError

    def getReturnType(
        self,
        server_interface: ServerInterface,
        arg_types: SizedColumnTypes,
        return_type: SizedColumnTypes,
    ) -> None:
        raise NotImplementedError

    def getParameterType(
        self, server_interface: ServerInterface, parameter_types: SizedColumnTypes
    ) -> None:
        """Declare ``USING PARAMETERS`` (none by default)."""

    def createTransformFunction(self, server_interface: ServerInterface) -> TransformFunction:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Harness: what the server does around a call `f(args) OVER (PARTITION BY ... ORDER BY ...)`


@dataclass
class TransformResult:
    """Output of :func:`run_transform`: named columns, rows in emission order, the log."""

    names: list[str]
    types: list[VerticaType]
    rows: list[tuple[object, ...]]
    logs: list[str] = field(default_factory=list)
    partition_sizes: list[int] = field(default_factory=list)

    def column(self, name: str) -> list[object]:
        """Return one output column as a list."""
        i = self.names.index(name)
        return [r[i] for r in self.rows]


def over(
    rows: Iterable[Sequence[object]],
    partition_by: Callable[[Sequence[object]], object],
    order_by: Callable[[Sequence[object]], Any],
) -> list[list[Sequence[object]]]:
    """Group ``rows`` as ``OVER (PARTITION BY ... ORDER BY ...)`` would (stable sort).

    Partitions come out in key order; Vertica gives no order across partitions, so callers
    must not rely on it.
    """
    keyed = sorted(rows, key=lambda r: (_sort_key(partition_by(r)), order_by(r)))
    return [list(g) for _, g in itertools.groupby(keyed, key=lambda r: _sort_key(partition_by(r)))]


def _sort_key(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else (value,)


def _prototype_matches(declared: str, actual: VerticaType) -> bool:
    return declared == "ANY" or declared == actual.name


def run_transform(
    factory_cls: type,
    arg_types: Sequence[VerticaType],
    partitions: Iterable[Sequence[Sequence[object]]],
    params: Mapping[str, Any] | None = None,
    block_size: int = 1024,
) -> TransformResult:
    """Run a UDTF factory over partitions as the server would.

    Parameters
    ----------
    factory_cls
        The ``TransformFunctionFactory`` subclass named in ``CREATE TRANSFORM FUNCTION``.
    arg_types
        Types of the call's arguments, in order.
    partitions
        Each partition's input rows, already in ``ORDER BY`` order.
    params
        ``USING PARAMETERS`` values.
    block_size
        Rows per reader block (what ``getNumRows`` reports).

    Returns
    -------
    TransformResult
        Every output row, in emission order.
    """
    srv = ServerInterface(params=params)
    factory = factory_cls()
    if not isinstance(factory, TransformFunctionFactory):
        raise StandInError(f"{factory_cls.__name__} is not a TransformFunctionFactory")

    proto_args, proto_ret = ColumnTypes(), ColumnTypes()
    factory.getPrototype(srv, proto_args, proto_ret)
    if len(proto_args.names) != len(arg_types) or not all(
        _prototype_matches(d, a) for d, a in zip(proto_args.names, arg_types, strict=False)
    ):
        raise StandInError(
            f"no function matches the call: prototype {proto_args.names}, "
            f"arguments {[a.name for a in arg_types]}"
        )

    declared = SizedColumnTypes()
    factory.getParameterType(srv, declared)
    unknown = set(params or {}) - {name for _, name in declared.columns}
    if unknown:
        raise StandInError(
            f"USING PARAMETERS names {sorted(unknown)} that getParameterType does not declare"
        )

    sized_args = SizedColumnTypes((t, "") for t in arg_types)
    ret = SizedColumnTypes()
    factory.getReturnType(srv, sized_args, ret)
    ret_cols = ret.columns
    if len(ret_cols) != len(proto_ret.names) or not all(
        _prototype_matches(d, t) for d, (t, _) in zip(proto_ret.names, ret_cols, strict=False)
    ):
        raise StandInError(
            f"getReturnType {[t.name for t, _ in ret_cols]} disagrees with "
            f"getPrototype {proto_ret.names}"
        )
    names = [n for _, n in ret_cols]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise StandInError(f"a UDTF's output columns need unique, non-empty names: {names}")

    fn = factory.createTransformFunction(srv)
    if not isinstance(fn, TransformFunction):
        raise StandInError("createTransformFunction must return a TransformFunction")
    result = TransformResult(names=names, types=[t for t, _ in ret_cols], rows=[], logs=srv.logs)
    fn.setup(srv, sized_args)
    for part in partitions:
        reader = PartitionReader(sized_args, part, block_size=block_size)
        writer = PartitionWriter(ret)
        fn.processPartition(srv, reader, writer)
        if writer.pending():
            raise StandInError(
                f"processPartition returned with a half-written row: {writer.pending()}"
            )
        result.rows.extend(writer.rows)
        result.partition_sizes.append(len(writer.rows))
    fn.destroy(srv, sized_args)
    return result
