"""The track kinds' table (components/tracking.py): every kind the settings accept has a row, the program
declares exactly a row's steps, BACKUP first, and a kind without a row raises instead of rendering."""

from __future__ import annotations

import typing

import pytest

from components import names, render
from components.settings import TrackScript, parse_cluster
from components.tracking import TRACK_KINDS, track_kind
from harness import program as harness_program

from .conftest import STACKS

pytestmark = pytest.mark.unit

COMMAND = "command:remote:Command"


def test_every_kind_the_settings_accept_has_a_row():
    assert set(typing.get_args(TrackScript.model_fields["kind"].annotation)) == set(TRACK_KINDS)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("kind", sorted(TRACK_KINDS))
def test_the_program_declares_the_kinds_steps_backup_first(run_stack, stack, kind):
    def alter(config):
        track = config["pihalb:cluster"]["vrrp"].setdefault("track", {})
        track["kind"] = kind
        track["weight"] = abs(track.get("weight", 2))

    declared = run_stack(stack, alter)
    row = track_kind(kind)
    master, backup = (
        declared.outputs["vrrpMaster"],
        next(b for b in declared.outputs["balancers"] if b != declared.outputs["vrrpMaster"]),
    )
    vrrp = [r.name for r in declared.of_type(COMMAND) if r.name.startswith(f"vrrp-{master}-")]
    assert vrrp == [f"vrrp-{master}-{step}" for step in ("vrrp-host", *row.steps, "keepalived")]
    for step in (*row.steps, "keepalived"):
        ours, twin = declared.named(f"vrrp-{master}-{step}"), declared.named(f"vrrp-{backup}-{step}")
        assert declared.depends_on(ours, twin), f"the MASTER's {step} runs after the BACKUP's"
    # A track file needs a step that writes it; a script kind none (keepalived polls HAProxy itself).
    writes = f"\nTRACK_FILE={names.HAPROXY_TRACK_FILE}\n"
    writers = [s for s in row.steps if writes in declared.named(f"vrrp-{master}-{s}").inputs["stdin"]]
    assert bool(writers) == (row.block == "file"), (kind, row)
    for lb in (master, backup):
        keepalived = declared.named(f"vrrp-{lb}-keepalived")
        for step in row.steps:
            assert declared.depends_on(keepalived, declared.named(f"vrrp-{lb}-{step}"))


def test_a_kind_without_a_row_raises_when_rendered():
    config = harness_program.stack_file_config("dev-tuned")["pihalb:cluster"]
    cluster = parse_cluster(config)
    vrrp = cluster.vrrp.model_copy(update={"track": cluster.vrrp.track.model_copy(update={"kind": "netlink"})})
    odd = cluster.model_copy(update={"vrrp": vrrp})
    master, backup = (h for h in cluster.hosts if h.role == "balancer")
    with pytest.raises(ValueError, match="'netlink' is not in components/tracking.py TRACK_KINDS"):
        render.Renderer(render.FILES).keepalived_conf(odd, master, backup, master, "secret")
    with pytest.raises(ValueError, match="no host script for the tracking step 'poll'"):
        render.Renderer(render.FILES).track_step("poll")
