"""KeepalivedPair: VRRP on the two balancer hosts, outside the containers, moving the VIP.

A changed keepalived.conf stops the BACKUP's keepalived (its keepalived step) until the MASTER's step has
reloaded; the resume step then starts it again. The resume step is keyed (its `triggers`) on the BACKUP's
keepalived step's `stdout`, which carries a fresh run id on every run of that step: it runs again exactly
when that step ran since it last ran, so an `up` of a converged stack plans no step, and a BACKUP left
stopped is started by the next `up` wherever the previous one stopped:
- stopped after the BACKUP's step, before the MASTER's (or the MASTER's failed): the next `up` runs the
  MASTER's step, then the resume step (the BACKUP step's stdout in the state differs from the one the
  resume step recorded). An `up` that reverts the change runs the BACKUP's step again (its config differs
  from the state's; it installs the old config and leaves keepalived stopped), so the resume step runs
  after it;
- stopped after the MASTER's step: the resume step's triggers still differ from its state, so it runs;
- a resume whose create failed left no state (or its old copy with the old triggers): it runs again.
Not covered by Pulumi's state: the BACKUP's step killed or failed while running, then an `up` that
reverts the change; `pulumi up --replace` on the resume step starts the BACKUP's keepalived.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components import render
from components.host import HostPreparation
from components.remote import bring_back_script, remote_script
from components.settings import Cluster, Host
from components.tracking import track_kind


@dataclass(frozen=True)
class KeepalivedPairArgs:
    """Inputs of the VRRP pair."""

    rendering: render.Renderer
    """Renders keepalived.conf and the host scripts from the deployment's files root."""
    cluster: Cluster
    """The validated stack settings (VIP, router id, track script, mode)."""
    balancers: tuple[Host, Host]
    """The two balancers, MASTER (higher priority) first."""
    prepared: dict[str, HostPreparation]
    """Each balancer's preparation, by host name."""
    vrrp_password: pulumi.Input[str]
    """VRRP PASS authentication (VRRP version 2 only), a Pulumi secret."""
    after: tuple[pulumi.Resource, ...]
    """The balancers' last HAProxy steps: the VIP goes up only where HAProxy already answers."""


class KeepalivedPair(pulumi.ComponentResource):
    """Per balancer: firewall and sysctl for VRRP, then keepalived.conf checked and the service reloaded."""

    master: str
    """Name of the balancer meant to hold the VIP."""

    def __init__(self, name: str, args: KeepalivedPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:KeepalivedPair", name, None, opts)
        cluster = args.cluster
        master, backup = args.balancers
        self.master = master.name
        tracker = track_kind(cluster.vrrp.track.kind)  # raises on a kind without a row
        # The BACKUP's steps first, each of the MASTER's after its BACKUP twin: a change (a firewall
        # script, a watcher, a keepalived value) never touches both hosts at once. A changed keepalived.conf
        # stops the BACKUP's keepalived until the MASTER has reloaded (keepalived.sh says why); the resume
        # step, keyed on each run of the BACKUP's step, starts it again.
        backup_steps: dict[str, command.remote.Command] = {}
        for host, peer in ((backup, master), (master, backup)):
            prepared = args.prepared[host.name]
            first = [backup_steps["vrrp-host"]] if host is master else []
            vrrp_host = remote_script(
                f"{name}-{host.name}-vrrp-host",
                prepared.connection,
                args.rendering.vrrp_host_script(cluster, peer),
                delete_script=args.rendering.vrrp_host_delete_script(cluster),
                parent=self,
                depends_on=[prepared.ready, *first],
            )
            steps = {"vrrp-host": vrrp_host}
            for step in tracker.steps:  # what keeps the tracked state, each after the one before
                first = [backup_steps[step]] if host is master else []
                script, delete = args.rendering.track_step(step)
                steps[step] = remote_script(
                    f"{name}-{host.name}-{step}",
                    prepared.connection,
                    script,
                    delete_script=delete,
                    parent=self,
                    depends_on=[list(steps.values())[-1], *first],
                )
            conf = pulumi.Output.from_input(args.vrrp_password).apply(
                lambda password, host=host, peer=peer: args.rendering.keepalived_conf(
                    cluster, host, peer, master, password
                )
            )
            first = [backup_steps["keepalived"]] if host is master else []
            keepalived = remote_script(
                f"{name}-{host.name}-keepalived",
                prepared.connection,
                conf.apply(lambda text, pause=host is backup: args.rendering.keepalived_script(cluster, text, pause)),
                delete_script=args.rendering.keepalived_delete_script(),
                carries_secrets=True,
                parent=self,
                depends_on=[*steps.values(), *args.after, *first],
                takes_out=host is backup,
            )
            if host is backup:
                backup_steps = {**steps, "keepalived": keepalived}
            else:
                bring_back_script(
                    f"{name}-{backup.name}-keepalived-resume",
                    args.prepared[backup.name].connection,
                    args.rendering.keepalived_resume_script(),
                    keyed_on=[backup_steps["keepalived"].stdout],
                    parent=self,
                    depends_on=[keepalived],
                )
        # No outputs of its own: `master` is the settings' choice, which the stack exports (components/cluster.py).
        self.register_outputs({})
