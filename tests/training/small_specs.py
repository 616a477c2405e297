"""A small feature spec the trainer tests share: ids on both sides and one item category."""

from towers.spec import FeatureKind, FeatureSpec, ModelSpec, TowerSpec


def category_spec(cold_path: bool = False) -> ModelSpec:
    """16-d user and item ids, an 8-d item category; ``cold_path`` on the candidate tower."""
    return ModelSpec(
        embedding_dim=16,
        query=TowerSpec(features=[FeatureSpec(name="user_id", kind=FeatureKind.ID, embedding_dim=16)]),
        candidate=TowerSpec(
            features=[
                FeatureSpec(name="item_id", kind=FeatureKind.ID, embedding_dim=16),
                FeatureSpec(name="category", kind=FeatureKind.CATEGORICAL, embedding_dim=8),
            ],
            cold_path=cold_path,
        ),
    )
