"""Every rendered manifest validates: custom resources against the vendored KubeRay and Strimzi
schemas with check-jsonschema, built-in kinds with kubernetes-validate (offline, strict, Kubernetes
1.33), and so do the RayJobs a schedule creates (its filter run on the rendered template). The
vendored schemas are the ones in the shared folder, and a broken manifest does fail.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from check_jsonschema.cli.main_command import main as check_jsonschema
from click.testing import CliRunner

from tests.k8s.manifests import (
    BUILT_IN,
    CRD_SCHEMAS,
    JQ,
    KUBERNETES_VERSION,
    OVERLAYS,
    SCHEMAS,
    SHARED_SCHEMAS,
    name_of,
    rendered,
    scheduled_runs,
)


def _check(schema: str, files: list[Path]) -> tuple[int, str]:
    result = CliRunner().invoke(check_jsonschema, ["--schemafile", str(SCHEMAS / schema), *map(str, files)])
    return result.exit_code, result.output


def test_every_kind_has_a_validator():
    kinds = {(r["apiVersion"], r["kind"]) for overlay in OVERLAYS for r in rendered(overlay)}
    unvalidated = kinds - set(CRD_SCHEMAS) - BUILT_IN
    assert not unvalidated, f"no schema for {sorted(unvalidated)}: add one to CRD_SCHEMAS or BUILT_IN"
    assert set(CRD_SCHEMAS) <= kinds, "every custom resource kind of the project is deployed somewhere"


def test_custom_resources_match_their_schemas(tmp_path):
    """One check-jsonschema run per schema, over that kind's resources in every overlay."""
    files: dict[str, list[Path]] = {}
    for overlay in OVERLAYS:
        resources = rendered(overlay)
        runs = [run for _, run in scheduled_runs(resources)] if JQ else []
        for r in resources + runs:
            schema = CRD_SCHEMAS.get((r["apiVersion"], r["kind"]))
            if schema:
                path = tmp_path / f"{overlay}.{r['kind']}.{name_of(r)}.yaml"
                path.write_text(yaml.safe_dump(r))
                files.setdefault(schema, []).append(path)
    assert set(files) == set(CRD_SCHEMAS.values())
    assert not JQ or any("generateName" in p.read_text() for p in files[CRD_SCHEMAS[("ray.io/v1", "RayJob")]])
    failures = []
    for schema, paths in sorted(files.items()):
        code, output = _check(schema, paths)
        if code != 0:
            failures.append(output)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_built_in_kinds_validate_strictly(overlay):
    checked = 0
    for r in rendered(overlay):
        if (r["apiVersion"], r["kind"]) in BUILT_IN:
            kubernetes_validate.validate(r, KUBERNETES_VERSION, strict=True)
            checked += 1
    assert checked >= 10  # 2 Deployments, 4 ConfigMaps; the schedule's CronJob, ServiceAccount, Role, RoleBinding


def test_a_broken_schedule_fails_its_schema():
    cron = next(r for r in rendered("base") if r["kind"] == "CronJob")
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAcountName"] = "x"  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError, match="serviceAcountName"):
        kubernetes_validate.validate(cron, KUBERNETES_VERSION, strict=True)


def test_a_broken_custom_resource_fails(tmp_path):
    job = next(r for r in rendered("gpu") if r["kind"] == "RayJob")
    job["spec"]["shutdownAfterJobFinishes"] = "yes"
    job["spec"]["submissionMode"] = 3
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(job))
    code, output = _check(CRD_SCHEMAS[("ray.io/v1", "RayJob")], [path])
    assert code == 1 and "shutdownAfterJobFinishes" in output and "submissionMode" in output


def test_strimzi_schemas_refuse_unknown_fields(tmp_path):
    topic = next(r for r in rendered("base") if r["kind"] == "KafkaTopic")
    topic["spec"]["partition"] = 3  # misspelt
    path = tmp_path / "topic.yaml"
    path.write_text(yaml.safe_dump(topic))
    code, output = _check(CRD_SCHEMAS[("kafka.strimzi.io/v1", "KafkaTopic")], [path])
    assert code == 1 and "partition" in output


def test_a_broken_built_in_kind_fails():
    deployment = next(r for r in rendered("base") if r["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(not SHARED_SCHEMAS.is_dir(), reason="no ../shared/k8s-schemas beside this clone to compare with")
def test_vendored_schemas_equal_the_shared_ones():
    names = sorted(p.name for p in SHARED_SCHEMAS.iterdir() if p.name != "README.md")
    assert names, "the shared schema folder is empty"
    _, mismatch, errors = filecmp.cmpfiles(SHARED_SCHEMAS, SCHEMAS, names, shallow=False)
    assert not mismatch and not errors, f"k8s/schemas/ differs from {SHARED_SCHEMAS}: {mismatch + errors}"
