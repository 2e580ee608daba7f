"""The change scenarios: each run makes one more ordinary change and applies it with the lab engine."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from bench.runs import OUT, ROOT, Run, Scenario, quiet, run_stack
from components.debian import HAPROXY_PINNED_VERSION
from drills import maintenance, stack
from lab.lab import Lab

# A keepalived.conf value changed and back: the profile's own value, then another valid one (a reload
# that changes the effective priorities on both balancers, and no state).
KEEPALIVED_TOGGLES = {
    "paper": ("vrrp.track.weight", 2, 3),
    "tuned": ("vrrp.track.weight", 0, 2),
    "unicast": ("vrrp.track.weight", 0, 2),
}


class Changes:
    """What the change scenarios have changed so far, per profile: a copy of files/ and cluster values.

    Every run makes one more change on top of the last (a new comment, a toggled value), applied to the
    lab with the lab engine as `pulumi up` would apply it.
    """

    def __init__(self) -> None:
        self.files = OUT / "tmp-changes"
        self.values: dict[str, object] = {}

    def reset(self) -> None:
        shutil.rmtree(self.files, ignore_errors=True)
        shutil.copytree(ROOT / "files", self.files)
        self.values = {}

    def append(self, relative: str, line: str) -> None:
        with open(self.files / relative, "a") as handle:
            handle.write(line + "\n")

    def toggle(self, path: str, first: object, second: object) -> None:
        self.values[path] = second if self.values.get(path, first) == first else first

    def altered(self, run: Run) -> tuple[str, Callable[[dict], None]]:
        """The run's stack file and what changes its config: the profile's own alteration, then the values."""
        name, alter = run_stack(run.base_profile)

        def altered(config: dict) -> None:
            if alter:
                alter(config)
            stack.apply_values(config, self.values)

        return name, altered

    def apply(self, lab: Lab, run: Run) -> None:
        name, altered = self.altered(run)
        applied = stack.apply(lab, altered, log=quiet, profile=name, files=self.files)
        kinds = applied.plan.changes_besides_bring_back()
        counts: dict[str, int] = {}
        for kind in kinds.values():
            counts[kind] = counts.get(kind, 0) + 1
        run.notes.append("plan: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


CHANGES = Changes()
CHANGE_WINDOW_S = 1800.0  # an upper bound: the window ends TAIL_S after the apply
TAIL_S = 5.0


def _change(make: Callable[[Lab, Run], None]) -> Callable[[Lab, Run], None]:
    def run_change(lab: Lab, run: Run) -> None:
        make(lab, run)
        CHANGES.apply(lab, run)

    return run_change


def _engine_restart_rolling(lab: Lab, run: Run) -> None:
    maintenance.restart_engines_rolling(lab, *CHANGES.altered(run))
    run.notes.append("dockerd restarted on each host in turn, servers drained first, the MASTER after a handover")


def _server_removed_and_added(lab: Lab, run: Run) -> None:
    leaving = lab.servers[-1].name
    hosts = stack.cluster(stack.lab_stack.config(lab, run_stack(run.base_profile)[0]))["hosts"]
    CHANGES.values["hosts"] = [h for h in hosts if h["name"] != leaving]
    CHANGES.apply(lab, run)
    CHANGES.values.pop("hosts")
    CHANGES.apply(lab, run)


CHANGE_SCENARIOS = [
    Scenario(name, title, CHANGE_WINDOW_S, fault, change=True)
    for name, title, fault in [
        (
            "change-page",
            "change: the page",
            _change(lambda lab, run: CHANGES.append("templates/index.html.j2", f"<!-- run {run.run} -->")),
        ),
        (
            "change-nginx-image",
            "change: the nginx image (Dockerfile)",
            _change(lambda lab, run: CHANGES.append("nginx/Dockerfile", f"# run {run.run}")),
        ),
        (
            "change-haproxy-source",
            "change: HAProxy source version (pinned / newest)",
            _change(lambda lab, run: CHANGES.toggle("haproxy.source.version", None, HAPROXY_PINNED_VERSION)),
        ),
        (
            "change-haproxy-cfg",
            "change: a haproxy.cfg value",
            _change(lambda lab, run: CHANGES.toggle("haproxy.timeouts.clientMs", 10000, 11000)),
        ),
        (
            "change-keepalived",
            "change: a keepalived.conf value",
            _change(lambda lab, run: CHANGES.toggle(*KEEPALIVED_TOGGLES[run.base_profile])),
        ),
        (
            "change-host-scripts",
            "change: host scripts (firewall, watcher)",
            _change(
                lambda lab, run: [
                    CHANGES.append(f"scripts/{name}", f"# run {run.run}")
                    for name in ("vrrp-host.sh", "haproxy-watch.sh")
                ]
            ),
        ),
        (
            "change-base-image",
            "change: baseImage (every image rebuilt)",
            _change(lambda lab, run: CHANGES.toggle("baseImage", None, maintenance.base_image_alias(lab))),
        ),
        (
            "change-engine-restart",
            "change: Docker engine restarted on every host in turn",
            _engine_restart_rolling,
        ),
        ("change-server-remove-add", "change: a server removed, then added back", _server_removed_and_added),
    ]
]
