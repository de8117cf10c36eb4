"""Session-wide fixtures live in tests/fixtures/ (one module per real component) and load here."""

pytest_plugins = [
    "tests.fixtures.clips",
    "tests.fixtures.s3",
    "tests.fixtures.gcs",
    "tests.fixtures.object_store",
    "tests.fixtures.broker",
    "tests.fixtures.ray_local",
    "tests.fixtures.serve",
    "tests.fixtures.bridge",
    "tests.fixtures.chat_server",
    "tests.fixtures.label_studio",
]
