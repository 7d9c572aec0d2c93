"""The workload kinds' table cells are kube's: a Job's status, completions and duration, a CronJob's unset
fields, a PriorityClass's policy, selectors written as metav1.FormatLabelSelector writes them."""

from __future__ import annotations

from superpod_sandbox.apiserver.formats import printers, printers_workloads


def cells(key: tuple[str, str], obj: dict) -> dict[str, object]:
    table = printers.table([obj], printers_workloads.COLUMNS[key], {})
    names = [column["name"] for column in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


def job(status: dict, **spec) -> dict:
    return {
        "metadata": {"name": "train", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "trainer:1"}]}}, **spec},
        "status": status,
    }


def test_a_finished_job_shows_complete_its_completions_and_how_long_it_ran():
    done = job(
        {
            "succeeded": 3,
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:02:05Z",
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        },
        completions=3,
        selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
    )
    row = cells(("batch", "jobs"), done)
    assert (row["Status"], row["Completions"], row["Duration"]) == ("Complete", "3/3", "2m5s")
    assert (row["Containers"], row["Images"]) == ("c", "trainer:1")
    assert row["Selector"] == "batch.kubernetes.io/controller-uid=u"


def test_a_job_without_completions_counts_against_one_and_shows_its_parallelism():
    assert cells(("batch", "jobs"), job({}))["Completions"] == "0/1"
    assert cells(("batch", "jobs"), job({"succeeded": 1}, parallelism=4))["Completions"] == "1/1 of 4"
    failing = job({"conditions": [{"type": "FailureTarget", "status": "True"}]})
    assert cells(("batch", "jobs"), failing)["Status"] == "FailureTarget"
    assert cells(("batch", "jobs"), job({}))["Duration"] == ""


def test_cron_jobs_priority_classes_and_budgets_print_kubes_placeholders():
    cronjob = {"metadata": {"name": "n"}, "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {}}}}
    row = cells(("batch", "cronjobs"), cronjob)
    assert (row["Timezone"], row["Suspend"], row["Active"], row["Last Schedule"]) == (
        "<none>",
        "<unset>",
        0,
        "<none>",
    )
    priority = cells(("scheduling.k8s.io", "priorityclasses"), {"metadata": {"name": "p"}, "value": 7})
    assert (priority["Value"], priority["Global-Default"], priority["PreemptionPolicy"]) == (
        7,
        False,
        "<unset>",
    )
    budget = cells(
        ("policy", "poddisruptionbudgets"), {"metadata": {"name": "b"}, "spec": {"maxUnavailable": "25%"}}
    )
    assert (budget["Min Available"], budget["Max Unavailable"]) == ("N/A", "25%")


def test_selectors_with_expressions_are_formatted_like_kube():
    selector = {
        "matchLabels": {"app": "a"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    replicaset = {
        "metadata": {"name": "r"},
        "spec": {"replicas": 2, "selector": selector},
        "status": {"replicas": 1},
    }
    row = cells(("apps", "replicasets"), replicaset)
    assert row["Selector"] == "app=a,tier in (api,web),!canary"
    assert (row["Desired"], row["Current"], row["Ready"]) == (2, 1, 0)
