"""Any parameters: either a clear `ParameterError`, or a housing that passes every check."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.enclosure import ParameterError, generate, parse_params, run_checks
from tests.enclosure.helpers import BOARDS, KINDS


@st.composite
def configurations(draw: st.DrawFn) -> tuple[str, str, dict[str, object]]:
    nozzle = draw(st.sampled_from([0.25, 0.4, 0.6]))
    wall = draw(st.floats(2 * nozzle, 4.0))
    values: dict[str, object] = {
        "wall": wall,
        "clearance": draw(st.floats(0.1, 2.0)),
        "tolerance": draw(st.floats(0.0, 0.5)),
        "fastening": draw(st.sampled_from(["screws", "snap"])),
        "screw": draw(st.sampled_from(["M2", "M2.5", "M3"])),
        "vents": draw(st.booleans()),
        "lip_depth": draw(st.floats(max(wall, 1.0), 8.0)),
        "usb_margin": draw(st.floats(0.0, 4.0)),
        "min_standoff": draw(st.floats(0.5, 8.0)),
        "base_thickness": draw(st.floats(6.0, 14.0)),
        "pedestal_height": draw(st.floats(2.0, 8.0)),
        "field_of_view": draw(st.floats(0.0, 120.0)),
        "printer": {"nozzle": nozzle, "layer_height": nozzle / 2},
    }
    return draw(st.sampled_from(KINDS)), draw(st.sampled_from(BOARDS)), values


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_valid_parameters_give_housings_that_pass_every_check(
    config: tuple[str, str, dict[str, object]],
) -> None:
    kind, board, values = config
    try:
        enclosure = generate(kind, board, None, parse_params(values))  # type: ignore[arg-type]
    except ParameterError as err:
        assert str(err)  # refused, with a reason
        return
    failed = [f"{r.name}: {r.detail}" for r in run_checks(enclosure) if not r.ok]
    assert failed == []
