"""The generated labelling interface: one video, a 1..K rating per dimension, sub-attributes, a comment."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.labels.config import LabelConfig
from ultravqa_ray.labels.interface import labeling_config


def test_interface_has_video_ratings_choices_and_comment():
    config = LabelConfig()
    root = ET.fromstring(labeling_config(config))
    videos = root.findall(".//Video")
    assert [(v.get("name"), v.get("value")) for v in videos] == [("video", "$video")]
    ratings = root.findall(".//Rating")
    assert [r.get("name") for r in ratings] == [d.value for d in DIMENSIONS]
    assert {r.get("maxRating") for r in ratings} == {"5"}
    assert all(r.get("toName") == "video" and r.get("required") == "true" for r in ratings)
    choices = {
        c.get("name"): [x.get("value") for x in c.findall("Choice")] for c in root.findall(".//Choices")
    }
    assert choices["clarity_quality_sub"] == ["blur", "noise", "compression_artifacts", "low_resolution"]
    assert "static" in choices["motion_amplitude_sub"]
    assert all(c.get("choice") == "multiple" for c in root.findall(".//Choices"))
    assert root.find(".//TextArea").get("name") == "comment"
    # Each dimension's definition and the meaning of both ends are shown to the rater.
    helps = {t.get("name"): t.get("value") for t in root.findall(".//Text")}
    assert "sharpness" in helps["clarity_quality_help"] and "1 = very blurry" in helps["clarity_quality_help"]
    assert "5 = sharp and clean" in helps["clarity_quality_help"]


def test_interface_follows_k_and_a_subset_of_dimensions_with_quotes_escaped():
    config = LabelConfig.load(None, ["k=10", "comment=false"]).model_copy(
        update={
            "dimensions": (
                LabelConfig().spec(Dimension.CLARITY_QUALITY).model_copy(update={"low": 'a "bad" <clip>'}),
            )
        }
    )
    root = ET.fromstring(labeling_config(config))
    assert [(r.get("name"), r.get("maxRating")) for r in root.findall(".//Rating")] == [
        ("clarity_quality", "10")
    ]
    assert root.find(".//TextArea") is None
    assert '1 = a "bad" <clip>' in root.find(".//Text").get("value")
