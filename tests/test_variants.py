"""The registry of optimizer variants is the one list: everything derived from it agrees with it,
and each entry's builder, library check and tuned config exist."""

import dataclasses
import typing
from pathlib import Path

import pytest

from leangpt.config import TrainConfig, read_config_file
from leangpt.errors import ConfigError
from leangpt.report import training_keys
from leangpt.variants import KEYS, NAMES, VARIANTS, resolve

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"beta1", "beta2", "eps", "weight_decay", "seed"}


def test_the_config_allows_exactly_the_registered_variants():
    allowed = typing.get_args(typing.get_type_hints(TrainConfig)["optimizer_variant"])
    assert allowed == NAMES == tuple(VARIANTS)
    with pytest.raises(ConfigError, match="choose one of"):
        from leangpt.config import parse_config
        parse_config(TrainConfig, ["--optimizer_variant=sgd"])


def test_every_per_variant_key_is_a_typed_config_field_with_its_default():
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    for key in KEYS:
        assert fields[key.name].default == key.default and hints[key.name] == key.type, key.name
    # and no optimizer-specific field exists outside the registry (a prefix names its variant)
    prefixed = {name for name in fields if name.split("_")[0] in {n.split("_")[0] for n in NAMES}
                and name not in ("optimizer_variant",)}
    assert prefixed == {k.name for k in KEYS}


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_builds_and_its_tuned_config_matches(name):
    variant = VARIANTS[name]
    assert callable(resolve(variant.spec))
    if variant.requires:
        resolve(variant.requires)(name)  # the library is installed here (the dev extras)
    tuned = read_config_file(str(ROOT / variant.tuned_config))
    assert tuned["optimizer_variant"] == name and tuned["learning_rate"] == variant.tuned_lr
    assert set(variant.shared_keys) <= SHARED
    # a report lists what this variant reads, and none of the other variants' own keys
    shown = set(training_keys({"optimizer_variant": name}))
    others = {k.name for v in VARIANTS.values() if v is not variant for k in v.keys}
    assert set(variant.settings) <= shown and not shown & others


def test_a_bad_per_variant_value_is_one_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"muon_momentum=1.5 must be in \[0, 1\)"):
        TrainConfig(muon_momentum=1.5).validate()
    with pytest.raises(ConfigError, match=r"adafactor_beta1=2.0 must be None or in \[0, 1\)"):
        TrainConfig(adafactor_beta1=2.0).validate()
    TrainConfig(adafactor_beta1=None).validate()


def test_adam_shows_no_weight_decay_and_adafactor_no_betas():
    assert "weight_decay" not in training_keys({"optimizer_variant": "adam"})
    assert not {"beta1", "beta2"} & set(training_keys({"optimizer_variant": "adafactor"}))
