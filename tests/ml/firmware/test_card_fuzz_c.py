"""The model card reader (main/ef_card.c) against damage: mutated cards pass it only when Python's
ModelCard accepts them (the fields it reads are checked as pydantic checks them), random damage never
crashes it under AddressSanitizer, and its reasons print floats as Python does."""

import ctypes
import json
import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edgefleet.contracts import ModelCard
from tests.ml.firmware.card_c import (
    OK,
    SCHEMA,
    UNFIT,
    Firmware,
    build_fuzz_driver,
    card_text,
    run_fuzz_driver,
)
from tests.ml.firmware.cbind import needs_cc

pytestmark = needs_cc
# card_fw is a session fixture: the same library for every example
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# Fields the reader checks as Python's ModelCard does; the others (created, description,
# score_stats, metrics, lineage) it only type-checks, so they are not mutated here.
UNCHECKED = {"created", "description", "score_stats", "metrics", "lineage"}
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 2, 64, 65536, 65537, 2**53, 2**53 + 1, 0.5, 100.0, 1e-300, 1e300]),
    st.text(alphabet="ab_.:+-0é \"\\", max_size=70),
    st.sampled_from(["int8", "float32", "stats", "spectral", "percentile", "fixed", "vibration", "camera",
                     "anomaly_detection", "1.0.0", "0" * 64]),
    st.none(), st.booleans(), st.just([]), st.just({}),
)  # fmt: skip


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value inside the card (containers too), but not under unchecked fields."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            if not (path == () and key in UNCHECKED):
                found += leaves(item, (*path, key))
    elif isinstance(value, list):
        for i in sorted({0, 1, 2, len(value) - 1} & set(range(len(value)))):  # a few per list
            found += leaves(value[i], (*path, i))
    return found


@st.composite
def mutated_cards(draw: st.DrawFn, base: dict[str, Any]) -> str:
    card = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(leaves(card)[1:]))
        parent = card
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "insert", "append"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "insert" and isinstance(parent, dict):
            parent["zz_" + draw(st.text(alphabet="abc", max_size=3))] = draw(VALUES)
        elif action == "append" and isinstance(parent[path[-1]], list) and parent[path[-1]]:
            parent[path[-1]].append(parent[path[-1]][0])
    return json.dumps(card)


def python_accepts(text: str) -> bool:
    try:
        ModelCard.model_validate_json(text)
    except ValidationError:
        return False
    return True


@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_mutated_cards_pass_the_reader_only_when_pythons_model_card_accepts_them(
    card_fw: Firmware, data: st.DataObject
) -> None:
    text = data.draw(mutated_cards(card_fw.card))
    rc, reason, _ = card_fw.cards.read(text.encode())
    assert rc in (OK, SCHEMA, UNFIT)
    assert (rc != SCHEMA) == python_accepts(text), (reason, text[:400])
    assert len(reason.encode()) <= 256 and (rc == OK) == (reason == "")


def test_random_damage_never_crashes_the_reader_under_address_sanitizer(
    card_fw: Firmware, tmp_path: Path
) -> None:
    """Truncations, flipped and inserted bytes, spliced tokens: exact-size buffers under ASan/UBSan."""
    program = build_fuzz_driver(card_fw.project / "main", tmp_path)
    base = card_text(card_fw.card)
    rng = random.Random(19)
    tokens = [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b'"',
        b"\\",
        b"\\u12",
        b"1e999",
        b"-",
        b"null",
        b"\xff",
        b"\x00",
    ]
    inputs = [base, base[:0], base[:1], *(base[: rng.randrange(len(base))] for _ in range(150))]
    for _ in range(1500):
        text = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text))
            kind = rng.random()
            if kind < 0.4:
                text[at] = rng.randrange(256)
            elif kind < 0.7:
                text[at:at] = rng.choice(tokens)
            else:
                del text[at : at + rng.randint(1, 40)]
        inputs.append(bytes(text))
    results = run_fuzz_driver(program, inputs, tmp_path)
    assert len(results) == len(inputs) and set(results) <= {OK, SCHEMA, UNFIT}
    assert results[0] == OK and results.count(OK) >= 1 and results.count(SCHEMA) > len(inputs) // 2
    for damaged, rc in zip(inputs, results, strict=True):
        if rc != SCHEMA:  # what the reader takes is JSON
            json.loads(damaged)


@settings(FUZZ, max_examples=300)
@given(
    x=st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1e16, 1e-5, 9.5e15, 123456789.0])
)
def test_floats_are_written_as_python_writes_them(card_fw: Firmware, x: float) -> None:
    buf = ctypes.create_string_buffer(48)
    card_fw.cards.lib.ef_py_float_repr(buf, 48, x)
    assert buf.value.decode() == repr(x)
