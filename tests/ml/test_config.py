from pathlib import Path

import pytest

from edgefleet.ml import ConfigError, load_config
from edgefleet.ml.config import expand_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["cwru.yaml", "synthetic.yaml"])
def test_example_configs_are_valid(name: str) -> None:
    config, sha = load_config(ROOT / "configs" / name)
    assert len(sha) == 64
    assert config.model.hidden == [12, 8, 12]
    assert config.threshold.policy == "percentile" and config.threshold.percentile == 99


def test_cwru_config_states_its_assumptions() -> None:
    config, _ = load_config(ROOT / "configs" / "cwru.yaml")
    assert config.data.sample_rate_hz == 12000 and config.data.axes == ["de"]
    assert config.data.normal == ["1797_Normal"] and config.data.anomaly is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_id: x\ndata: {format: npz}\nbogus: 1\n", "bogus: Extra inputs are not permitted"),
        ("model_id: x\n  data: [\n", r"c\.yaml:\d+: not valid YAML"),
        ("- a list\n", "invalid config"),
    ],
)
def test_bad_configs_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "c.yaml" in str(info.value)


def test_threshold_and_split_rules(tmp_path: Path) -> None:
    base = (ROOT / "configs" / "cwru.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(base.replace("policy: percentile", "policy: target_far"))
    with pytest.raises(ConfigError, match="target_far needs target_false_alarm_rate"):
        load_config(path)
    path.write_text(
        base.replace("split: {train: 0.6, calibration: 0.2}", "split: {train: 0.8, calibration: 0.2}")
    )
    with pytest.raises(ConfigError, match="must leave a test fraction"):
        load_config(path)


def test_expand_path() -> None:
    assert expand_path("{shared}/a.npz", {"shared": "/s"}) == Path("/s/a.npz")
    with pytest.raises(ConfigError, match="cannot expand"):
        expand_path("{nope}/a", {"shared": "/s"})
