"""The quality harness's variants of the project's model (benchmarks/quality/project.py
``project_variant``): ``cold_path=on|off`` reaches the candidate tower's spec, and ``default+...``
applies its tokens to the default spec and nothing else."""

from dataclasses import replace

import pytest

from benchmarks.quality.project import project_variant
from tests.taste_clusters import taste_clusters
from training.config import SplitKind

TEMPORAL = SplitKind.TEMPORAL


@pytest.fixture(scope="module")
def data():
    """A source whose default spec (the storefront's) keeps item metadata: ``category``."""
    return replace(taste_clusters(1, categories=True), source="synthetic:test")


def test_default_with_cold_path_is_the_default_spec_with_the_cold_path(data) -> None:
    plain, config = project_variant(data, "default", TEMPORAL)
    cold, cold_config = project_variant(data, "default+cold_path=on", TEMPORAL)
    assert not plain.candidate.cold_path and cold.candidate.cold_path
    assert cold.model_copy(update={"candidate": cold.candidate.model_copy(update={"cold_path": False})}) == plain
    assert cold_config == config
    off, _ = project_variant(data, "default+cold_path=off", TEMPORAL)
    assert off == plain


def test_default_takes_train_config_tokens(data) -> None:
    spec, config = project_variant(data, "default+cold_path=on+item_id_dropout=0.2+epochs=3", TEMPORAL)
    assert spec.candidate.cold_path
    assert (config.item_id_dropout, config.epochs, config.split) == (0.2, 3, TEMPORAL)


def test_cold_path_token_over_the_history_variants(data) -> None:
    """Those start from the MovieLens spec: the items get its ``genres``."""
    items = data.items.assign(genres=data.items["category"])
    spec, _ = project_variant(replace(data, items=items), "mean+cold_path=on", TEMPORAL)
    assert spec.candidate.cold_path
    assert spec.query.features[-1].pooling.value == "mean"


@pytest.mark.parametrize(
    "name, message",
    [
        ("default+mean", "'default' takes cold_path=on|off and TrainConfig tokens only"),
        ("default+cold_path=yes", "cold_path takes on or off"),
        ("cold_path=maybe", "cold_path takes on or off"),
    ],
)
def test_bad_tokens_are_named(data, name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        project_variant(data, name, TEMPORAL)


def test_a_cold_path_without_item_metadata_is_refused() -> None:
    ids_only = taste_clusters(1)  # no category: the default spec's candidate tower reads item_id alone
    with pytest.raises(ValueError, match="cold_path needs"):
        project_variant(replace(ids_only, source="synthetic:test"), "default+cold_path=on", TEMPORAL)
