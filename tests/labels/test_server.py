"""``ultravqa-ray label server`` (which the session fixture runs): a working token, kept, and raters.

That the server stops cleanly on SIGTERM (exit 0, Label Studio gone) is checked by the fixture's
teardown in ``tests/fixtures/label_studio.py``.
"""

from __future__ import annotations

import pytest

from ultravqa_ray.labels.studio import LabelStudio, StudioError

pytestmark = pytest.mark.slow


def test_server_prints_a_working_token_and_keeps_it_private(label_studio):
    owner = LabelStudio(label_studio.url, label_studio.token)
    assert owner.whoami()["email"] == "owner@example.com"
    token_file = label_studio.data_dir / "owner-token"
    assert token_file.read_text().strip() == label_studio.token
    assert token_file.stat().st_mode & 0o777 == 0o600
    for email in label_studio.raters:
        assert label_studio.client(email).whoami()["email"] == email


def test_a_wrong_password_or_token_is_refused_with_a_clear_error(label_studio):
    with pytest.raises(StudioError, match="refused the login of rater1@example.com"):
        LabelStudio.login(label_studio.url, "rater1@example.com", "wrong-password")
    with pytest.raises(StudioError, match="personal access token was refused"):
        LabelStudio(label_studio.url, "not-a-token").whoami()
