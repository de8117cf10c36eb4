"""In every overlay the Scorer's HTTP route requires a bearer token from a Secret, and every pod
that may run the route, or call it (the Kafka bridge), gets that token in the variable named."""

from __future__ import annotations

import pytest
import yaml

from tests.k8s.manifests import K8S, OVERLAYS, containers, load_yaml, of_kind, rendered


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_http_route_requires_a_token_from_a_secret_in_every_overlay(overlay):
    resources = rendered(overlay)
    (service,) = of_kind(resources, "RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    variable = app["args"]["http_token_env"]
    assert variable, "the manifests must turn the bearer token on"

    def token_source(container) -> tuple[str, str] | None:
        for env in container.get("env", []):
            if env["name"] == variable:
                ref = env["valueFrom"]["secretKeyRef"]
                return ref["name"], ref["key"]
        return None

    sources = {token_source(c) for c in containers(service["spec"]["rayClusterConfig"])}
    assert len(sources) == 1 and None not in sources, f"every Ray pod needs ${variable} from a Secret: {sources}"
    (secret,) = sources
    declared = {s["name"]: set(s["keys"]) for s in load_yaml(K8S / "external-secrets.yaml")["secrets"]}
    assert secret[1] in declared.get(secret[0], set()), f"{secret} is not listed in external-secrets.yaml"

    stream_config = yaml.safe_load((K8S / "base" / "config" / "stream.yaml").read_text())
    assert stream_config["scorer"]["mode"] == "http" and stream_config["scorer"]["http_token_env"] == variable
    (stream,) = [d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == "ultravqa-stream"]
    assert {token_source(c) for c in containers(stream)} == {secret}
