"""What a person reads for a dataset's fields and classes: the spec's labels and units, and
words made from the names where a spec gives none, so a new spec needs nothing for them."""

from __future__ import annotations

from importlib.resources import files

import yaml

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.features import feature_view
from lifeboat.serving.ui.form import form_fields


def _bare_customers() -> DatasetSpec:
    """The shipped customers spec with every label, unit and class name taken out."""
    spec = yaml.safe_load(files("lifeboat.datasets").joinpath("specs", "customers.yaml").read_text())
    for part in (spec["columns"], spec["aggregates"]):
        for column in part.values():
            for presentation in ("label", "unit", "hint", "options"):
                column.pop(presentation, None)
    spec["target"].pop("display")
    return DatasetSpec.model_validate(spec)


def test_without_labels_the_names_read_as_words() -> None:
    bare = _bare_customers()
    labels = {field.name: (field.label, field.unit) for field in form_fields(bare)}
    assert labels["avg_completed_spend"] == ("Avg completed spend", None)
    assert labels["days_since_last_purchase"] == ("Days since last purchase", None)
    assert bare.target.display_labels() == {"no_large_purchase": "No large purchase",
                                            "large_purchase": "Large purchase"}


def test_the_shipped_customers_spec_names_its_fields_units_and_classes() -> None:
    customers = load_spec("customers")
    fields = {field.name: field for field in form_fields(customers)}
    assert (fields["avg_completed_spend"].label, fields["avg_completed_spend"].unit) == (
        "Average purchase", "$")
    assert (fields["tenure_days"].label, fields["tenure_days"].unit) == ("Customer for", "days")
    assert dict(fields["region"].options)["central"] == "Central"
    assert all(field.label != field.name for field in fields.values())
    assert customers.target.display_labels() == {"no_large_purchase": "No purchase over $300",
                                                 "large_purchase": "Purchase over $300"}
    # What the API answers stays the label, whatever the UI shows.
    assert customers.label_for(0) == "no_large_purchase"


def test_labels_leave_the_feature_view_s_version_alone() -> None:
    """Presentation is not a definition: the stores' features stay the model's."""
    assert feature_view(load_spec("customers")).version == feature_view(_bare_customers()).version
