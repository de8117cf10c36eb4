"""The Label Studio labelling interface, generated from :class:`~ultravqa_ray.labels.config.LabelConfig`.

One video player, then per dimension: its label and definition, what 1 and K mean, a required
``Rating`` 1..K named after the dimension (``motion_quality``) and an optional multiple ``Choices``
of its sub-attributes (``motion_quality_sub``); last an optional ``TextArea`` ``comment``. The
control names are the contract :mod:`ultravqa_ray.labels.studio` reads results back with.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from ultravqa_ray.labels.config import LabelConfig

VIDEO = "video"  # object tag name and task data key
COMMENT = "comment"
SUB_SUFFIX = "_sub"


def labeling_config(config: LabelConfig) -> str:
    """The XML Label Studio calls the labelling config."""
    q = quoteattr
    lines = [
        "<View>",
        f'  <Video name="{VIDEO}" value="${VIDEO}" height="360"/>',
        f'  <Header value={q(f"Rate the video on each dimension, 1 (worst) to {config.k} (best).")} size="4"/>',
    ]
    for spec in config.dimensions:
        name = spec.name.value
        lines += [
            '  <View style="border-top: 1px solid #ddd; padding-top: 6px">',
            f'    <Header value={q(spec.name.label)} size="5"/>',
            f"    <Text name={q(name + '_help')} value={q(f'{spec.definition}. 1 = {spec.low}; {config.k} = {spec.high}.')}/>",
            f'    <Rating name="{name}" toName="{VIDEO}" maxRating="{config.k}" required="true" perRegion="false"/>',
        ]
        if spec.sub_attributes:
            lines.append(
                f'    <Choices name="{name}{SUB_SUFFIX}" toName="{VIDEO}" choice="multiple" showInline="true">'
            )
            lines += [f"      <Choice value={q(label)}/>" for label in spec.sub_attributes]
            lines.append("    </Choices>")
        lines.append("  </View>")
    if config.comment:
        lines.append(
            f'  <TextArea name="{COMMENT}" toName="{VIDEO}" placeholder="Optional comment" rows="2" maxSubmissions="1"/>'
        )
    lines.append("</View>")
    return "\n".join(lines) + "\n"
