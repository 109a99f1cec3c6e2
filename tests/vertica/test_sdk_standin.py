"""The stand-in ``vertica_sdk`` catches the mistakes a UDx could make on the real server.

The real module exists only inside Vertica; these tests pin the stand-in's strictness
(reading past the end, reading NULLs without ``isNull``, wrong getter/setter types,
half-written rows, sizing by ``getNumRows``) so that a UDx passing through it does not rely
on behaviour the Python SDK reference leaves unspecified.
"""

from __future__ import annotations

import numpy as np
import pytest

import tests.support.vertica_sdk as sdk

TYPES = sdk.SizedColumnTypes([(sdk.INTEGER, "a"), (sdk.FLOAT, "b"), (sdk.varchar(3), "c")])


def reader(rows, block_size=1024):
    return sdk.PartitionReader(TYPES, rows, block_size=block_size)


def test_the_reader_starts_on_row_zero_and_next_returns_false_once_at_the_end():
    r = reader([(1, 1.0, "x"), (2, 2.0, "y")])
    assert r.getInt(0) == 1
    assert r.next() is True
    assert r.getString(2) == "y"
    assert r.next() is False
    with pytest.raises(sdk.StandInError, match="read past the end"):
        r.getInt(0)
    with pytest.raises(sdk.StandInError, match="again"):
        r.next()


def test_reading_a_null_without_isnull_fails():
    r = reader([(None, 1.0, "x")])
    assert r.isNull(0)
    with pytest.raises(sdk.StandInError, match="test isNull first"):
        r.getInt(0)


def test_a_getter_of_another_type_fails():
    r = reader([(1, 1.0, "x")])
    with pytest.raises(sdk.StandInError, match="getFloat"):
        r.getFloat(0)
    with pytest.raises(sdk.StandInError, match="outside"):
        r.getInt(7)


def test_getnumrows_is_the_current_block_not_the_partition():
    r = reader([(i, 1.0, "x") for i in range(5)], block_size=2)
    assert r.getNumRows() == 2
    r.next()
    r.next()
    r.next()
    r.next()
    assert r.getNumRows() == 1


def test_input_values_are_checked_against_the_column_types():
    with pytest.raises(sdk.StandInError, match="do not fit"):
        reader([(1, 1.0, "long")])
    with pytest.raises(sdk.StandInError, match="FLOAT takes a float"):
        reader([(1, 1, "x")])
    with pytest.raises(sdk.StandInError, match="empty partition"):
        reader([])


def test_the_writer_refuses_a_row_with_a_column_not_set():
    w = sdk.PartitionWriter(TYPES)
    w.setInt(0, 1)
    w.setNull(1)
    with pytest.raises(sdk.StandInError, match=r"not set: \['c'\]"):
        w.next()
    w.setString(2, "ok")
    assert w.next() is True
    assert w.rows == [(1, None, "ok")]


@pytest.mark.parametrize(
    ("setter", "col", "value", "message"),
    [
        ("setInt", 0, 1.5, "INTEGER takes an int"),
        ("setInt", 0, np.int64(3), "INTEGER takes an int"),
        ("setInt", 0, True, "INTEGER takes an int"),
        ("setInt", 0, -(2**63), "outside Vertica's INTEGER range"),
        ("setFloat", 1, 1, "FLOAT takes a float"),
        ("setString", 2, "four", "do not fit"),
        ("setString", 0, "1", "on output column 'a'"),
        ("setBool", 1, np.bool_(True), "on output column 'b'"),
    ],
)
def test_setters_check_the_declared_type_and_the_python_type(setter, col, value, message):
    w = sdk.PartitionWriter(TYPES)
    with pytest.raises(sdk.StandInError, match=message):
        getattr(w, setter)(col, value)


def test_numpy_float64_is_a_float_as_in_the_sdk():
    w = sdk.PartitionWriter(TYPES)
    w.setFloat(1, np.float64(2.5))
    assert w.pending() == ["b"]


class _HalfWriter(sdk.TransformFunction):
    def processPartition(self, server_interface, partition_reader, partition_writer):
        partition_writer.setInt(0, partition_reader.getInt(0))


class _HalfFactory(sdk.TransformFunctionFactory):
    def getPrototype(self, server_interface, arg_types, return_type):
        arg_types.addInt()
        return_type.addInt()
        return_type.addInt()

    def getReturnType(self, server_interface, arg_types, return_type):
        return_type.addInt("x")
        return_type.addInt("y")

    def createTransformFunction(self, server_interface):
        return _HalfWriter()


def test_the_harness_refuses_a_half_written_row_left_at_the_end_of_a_partition():
    with pytest.raises(sdk.StandInError, match="half-written row"):
        sdk.run_transform(_HalfFactory, [sdk.INTEGER], [[(1,)]])


class _BadNamesFactory(_HalfFactory):
    def getReturnType(self, server_interface, arg_types, return_type):
        return_type.addInt("x")
        return_type.addInt("x")


def test_the_harness_requires_unique_output_names():
    with pytest.raises(sdk.StandInError, match="unique"):
        sdk.run_transform(_BadNamesFactory, [sdk.INTEGER], [[(1,)]])


class _MismatchFactory(_HalfFactory):
    def getReturnType(self, server_interface, arg_types, return_type):
        return_type.addInt("x")
        return_type.addFloat("y")


def test_the_harness_checks_getreturntype_against_getprototype():
    with pytest.raises(sdk.StandInError, match="disagrees"):
        sdk.run_transform(_MismatchFactory, [sdk.INTEGER], [[(1,)]])


def test_over_groups_and_orders_rows_stably():
    rows = [("b", 2, "first"), ("a", 1, "x"), ("b", 1, "y"), ("b", 2, "second")]
    parts = sdk.over(rows, partition_by=lambda r: r[0], order_by=lambda r: r[1])
    assert parts == [
        [("a", 1, "x")],
        [("b", 1, "y"), ("b", 2, "first"), ("b", 2, "second")],
    ]
