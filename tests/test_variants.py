"""Training-set variants as values (curation/variants.py): every name a run uses reads back to the same value,
and a name no variant has is refused."""

from __future__ import annotations

import pytest

from safer_rm.config import load_config
from safer_rm.curation.variants import Variant
from safer_rm.experiment.graph import fold_variants, variants

from helpers import ROOT


def test_names_read_back_to_their_values():
    cases = {
        "clean": Variant.clean(),
        "poison-safer-5.0": Variant.edit("poison", "safer", 5),
        "denoise-reward_margin-0.5": Variant.edit("denoise", "reward_margin", 0.5),
        "fold-2of5": Variant.of_fold(1, 5),
    }
    for name, value in cases.items():
        assert value.name == name and Variant.parse(name) == value and str(value) == name
    edit = Variant.parse("poison-reward_margin-10.0")
    assert (edit.mode, edit.method, edit.ratio) == ("poison", "reward_margin", 10.0) and edit.is_edit
    assert edit.same_edit_size(Variant.parse("poison-random-10.0"))
    assert not edit.same_edit_size(Variant.parse("denoise-random-10.0"))
    assert Variant.of_fold(0, 3).name == "fold-1of3" and Variant.parse("fold-3of3") == Variant.of_fold(2, 3)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "poison",
        "poison-safer",
        "taint-safer-5.0",
        "fold-0of3",
        "fold-4of3",
        "x-y-z",
        "poison-safer-5",
        "fold-01of3",
    ],
)
def test_a_name_no_variant_has_is_refused(name):
    with pytest.raises(ValueError, match="not a training-set variant"):
        Variant.parse(name)


def test_every_variant_of_the_full_config_reads_back():
    cfg = load_config(str(ROOT / "configs" / "full.yaml"))
    names = variants(cfg) + fold_variants(cfg)
    assert len(names) == 1 + 3 * (4 + 5) + 5
    assert [Variant.parse(n).name for n in names] == names
