"""AWS made offline for the DSQL tests: fake credentials, no config files, no network.

Registered as a pytest plugin by conftest.py, so ``fake_aws`` is a fixture in every
folder; ``ENDPOINT`` is a well-formed DSQL endpoint that no cluster answers.
"""

from __future__ import annotations

import pytest

__all__ = ["CLUSTER_ID", "ENDPOINT", "FAKE_KEY", "NO_AWS_FILES", "REGION"]

CLUSTER_ID = "abcdefghijklmnopqrstuvwxyz"
REGION = "us-east-1"
ENDPOINT = f"{CLUSTER_ID}.dsql.{REGION}.on.aws"
#: An access key id of the right shape; tokens signed with it are never sent anywhere.
FAKE_KEY = "AKIDLOADGENTEST00001"
#: For a subprocess's environment: no AWS config or credentials file, no instance metadata.
NO_AWS_FILES = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Fake credentials from the environment, no config files, and no way to reach the network.

    Returns a counter of boto3 clients made.
    """
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-for-tests")
    for name, value in NO_AWS_FILES.items():
        monkeypatch.setenv(name, value)

    import boto3  # here, not at the top: every test session loads this plugin, few tests use it
    import botocore.httpsession

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a token must be signed locally, without any network call")

    monkeypatch.setattr(botocore.httpsession.URLLib3Session, "send", no_network)
    made = {"clients": 0}
    real_client = boto3.session.Session.client

    def counting_client(self: boto3.session.Session, *args: object, **kwargs: object) -> object:
        made["clients"] += 1
        return real_client(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting_client)
    return made
