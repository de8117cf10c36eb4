"""The retraining schedule (k8s/base/jobs/schedule.retrain.yaml) starts one run at a time.

What a schema cannot see: the cron expression, the CronJob's policies, the template it copies, the
permissions its starter pod gets, and the starter's two jq filters, which run here on the rendered
template and on RayJob lists in each state (the RayJob a run is made of is validated with the others
in test_validate.py and test_consistency.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.k8s.manifests import JQ, OVERLAYS, env_of, jq, name_of, of_kind, rendered, scheduled_runs

ALL = sorted(OVERLAYS)
needs_jq = pytest.mark.skipif(JQ is None, reason="jq is not installed: the starter's filters cannot run here")

# Kubernetes parses `schedule` with robfig/cron's standard parser: five fields or a descriptor.
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
CRON_NAMES = {
    "month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    "day of week": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# What the starter pod does with the API: read the template, list the runs, create one.
STARTER_RULES = {("ray.io", "rayjobs", "get", "TEMPLATE"), ("ray.io", "rayjobs", "list", None),
                 ("ray.io", "rayjobs", "create", None)}  # fmt: skip


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a schedule Kubernetes accepts, or None."""
    if expression.strip() in CRON_DESCRIPTORS:
        return None
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        return f"{expression!r}: {len(fields)} fields, a schedule has 5 (minute hour day-of-month month day-of-week)"
    for text, (field, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return f"{expression!r}: bad step {step!r} in the {field} field"
            if span in ("*", "?"):
                continue
            for value in span.split("-", 1):
                names = CRON_NAMES.get(field, [])
                number = names.index(value.upper()) + low if value.upper() in names else None
                if number is None and not value.isdigit():
                    return f"{expression!r}: {value!r} is not a {field}"
                if not low <= (number if number is not None else int(value)) <= high:
                    return f"{expression!r}: {value} is outside the {field} range {low}-{high}"
    return None


def _starter(cron: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, starter container) of a CronJob."""
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return pod, container


def schedule_problems(resources: list[dict[str, Any]]) -> list[str]:
    """Everything wrong with the schedules among ``resources`` (empty: each starts one run at a time)."""
    problems = []
    crons = of_kind(resources, "CronJob")
    if not crons:
        return ["no CronJob: retraining has no schedule"]
    for cron in crons:
        name, spec = cron["metadata"]["name"], cron["spec"]
        if problem := cron_problem(spec["schedule"]):
            problems.append(f"{name}: {problem}")
        if spec.get("concurrencyPolicy") != "Forbid":
            problems.append(f"{name}: concurrencyPolicy must be Forbid (two starters could race)")
        if not spec.get("startingDeadlineSeconds", 0) > 0:
            problems.append(f"{name}: no startingDeadlineSeconds (a late start would run at any hour)")
        if not spec.get("timeZone"):
            problems.append(f"{name}: no timeZone (the schedule would follow the controller's clock)")
        for limit in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            if not spec.get(limit, 0) > 0:
                problems.append(f"{name}: {limit} keeps no starter's log")
        pod, container = _starter(cron)
        env = env_of(container)
        templates = [j for j in of_kind(resources, "RayJob") if j["metadata"]["name"] == env.get("TEMPLATE")]
        if not templates:
            problems.append(f"{name}: TEMPLATE {env.get('TEMPLATE')!r} is not a RayJob of the same render")
            continue
        [template] = templates
        if template["metadata"].get("labels", {}).get("app.kubernetes.io/name") != env["TEMPLATE"]:
            problems.append(f"{name}: the starter lists runs by app.kubernetes.io/name={env['TEMPLATE']}, "
                            "a label the template (and so its runs) must carry")  # fmt: skip
        if template["spec"].get("suspend") is not True:
            problems.append(f"{name}: the template {env['TEMPLATE']} is not suspended (it would run when applied)")
        if not str(template["spec"].get("entrypoint", "")).strip():
            problems.append(f"{name}: the template {env['TEMPLATE']} has no entrypoint")
        problems += _permission_problems(resources, name, pod["serviceAccountName"], env["TEMPLATE"])
    return problems


def _permission_problems(resources, cron: str, account: str, template: str) -> list[str]:
    """The starter's ServiceAccount exists and is bound to exactly the rules the starter uses."""
    if account not in {r["metadata"]["name"] for r in of_kind(resources, "ServiceAccount")}:
        return [f"{cron}: ServiceAccount {account} is not declared"]
    roles = {r["metadata"]["name"]: r for r in of_kind(resources, "Role")}
    granted: set[tuple[str, str, str, str | None]] = set()
    for binding in of_kind(resources, "RoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            role = roles.get(binding["roleRef"]["name"])
            if binding["roleRef"]["kind"] != "Role" or role is None:
                return [f"{cron}: {binding['metadata']['name']} binds a role that is not a Role here"]
            for rule in role["rules"]:
                names = rule.get("resourceNames") or [None]
                granted |= {(g, r, v, n) for g in rule["apiGroups"] for r in rule["resources"]
                            for v in rule["verbs"] for n in names}  # fmt: skip
    wanted = {(g, r, v, template if n == "TEMPLATE" else n) for g, r, v, n in STARTER_RULES}
    if granted != wanted:
        return [f"{cron}: {account} may {sorted(granted, key=str)}, the starter needs {sorted(wanted, key=str)}"]
    return []


@pytest.mark.parametrize("overlay", ALL)
def test_each_overlay_schedules_retraining_one_run_at_a_time(overlay):
    assert schedule_problems(rendered(overlay)) == []


@pytest.mark.parametrize(
    "expression",
    ["0 2 * * 8", "61 2 * * 1", "0 2 * *", "every monday", "0 2 * * MON-FUNDAY", "*/0 * * * *", "0 24 * * 1"],
)
def test_an_invalid_cron_expression_fails(expression):
    resources = rendered("base")
    [cron] = of_kind(resources, "CronJob")
    cron["spec"]["schedule"] = expression
    [problem] = schedule_problems(resources)
    assert problem.startswith(f"ultravqa-retrain-schedule: {expression!r}"), problem


@pytest.mark.parametrize("expression", ["0 2 * * 1", "30 3 1,15 * *", "0 */6 * * MON-FRI", "@weekly", "0 0 ? JAN SUN"])
def test_valid_cron_expressions_pass(expression):
    assert cron_problem(expression) is None


def test_a_broken_schedule_fails():
    """Each rule can fail: an unsuspended, entry-point-less or unlabelled template, Allow, extra rights."""
    resources = rendered("base")
    [cron] = of_kind(resources, "CronJob")
    [template] = [j for j in of_kind(resources, "RayJob") if j["metadata"]["name"] == "ultravqa-retrain"]
    [role] = of_kind(resources, "Role")
    del template["spec"]["entrypoint"]
    template["spec"]["suspend"] = False
    cron["spec"]["concurrencyPolicy"] = "Allow"
    role["rules"][1]["verbs"].append("delete")
    template["metadata"]["labels"]["app.kubernetes.io/name"] = "retrain"
    problems = "\n".join(schedule_problems(resources))
    for expected in ("has no entrypoint", "is not suspended", "concurrencyPolicy must be Forbid", "'delete'",
                     "a label the template"):  # fmt: skip
        assert expected in problems, problems


@needs_jq
@pytest.mark.parametrize("overlay", ALL)
def test_a_run_is_the_template_unsuspended_under_a_generated_name(overlay):
    resources = rendered(overlay)
    [(cron, run)] = scheduled_runs(resources)
    [template] = [j for j in of_kind(resources, "RayJob") if j["metadata"]["name"] == "ultravqa-retrain"]
    assert run["metadata"] == {"generateName": "ultravqa-retrain-", "labels": template["metadata"]["labels"]}
    assert run["spec"] == {**template["spec"], "suspend": False}
    assert (run["apiVersion"], run["kind"]) == ("ray.io/v1", "RayJob")
    assert name_of(run) == "ultravqa-retrain-"


def _ray_job(name: str, status: str | None, suspend: bool = False) -> dict[str, Any]:
    job: dict[str, Any] = {"metadata": {"name": name}, "spec": {"suspend": suspend}}
    if status is not None:
        job["status"] = {"jobDeploymentStatus": status}
    return job


@needs_jq
def test_no_run_starts_while_an_earlier_one_is_not_finished():
    """ACTIVE_RUNS on `kubectl get rayjobs -o json`: the runs in every unfinished state, not the suspended template."""
    [cron] = of_kind(rendered("base"), "CronJob")
    env = env_of(_starter(cron)[1])
    finished = [_ray_job("ultravqa-retrain-a", "Complete"), _ray_job("ultravqa-retrain-b", "Failed"),
                _ray_job("ultravqa-retrain-c", "ValidationFailed")]  # fmt: skip
    template = _ray_job(env["TEMPLATE"], "Suspended", suspend=True)
    unfinished = [_ray_job("ultravqa-retrain-new", None), _ray_job("ultravqa-retrain-init", "Initializing"),
                  _ray_job("ultravqa-retrain-run", "Running"), _ray_job("ultravqa-retrain-retry", "Retrying"),
                  _ray_job("ultravqa-retrain-held", "Suspended", suspend=True)]  # fmt: skip

    def active(items):
        return jq(env["ACTIVE_RUNS"], {"kind": "RayJobList", "items": items}, template=env["TEMPLATE"])

    assert active([template, *finished]) == []
    assert active([template, *finished, *unfinished]) == [name_of(j) for j in unfinished]
    assert active([]) == []
    assert active([_ray_job(env["TEMPLATE"], "Running"), *finished]) == [env["TEMPLATE"]]  # unsuspended by hand


def test_the_starter_script_uses_its_environment():
    """The script names the filters and the template only through the variables tested above."""
    [cron] = of_kind(rendered("base"), "CronJob")
    _, container = _starter(cron)
    [script] = container["args"]
    assert container["command"] == ["/bin/bash", "-c"] and script.startswith("set -euo pipefail")
    assert set(re.findall(r"\$\{?([A-Z_]+)", script)) == {"TEMPLATE", "ACTIVE_RUNS", "NEW_RUN"}
    assert set(env_of(container)) == {"TEMPLATE", "ACTIVE_RUNS", "NEW_RUN", "HOME"}
    assert "kubectl create -f -" in script and "exit 0" in script
