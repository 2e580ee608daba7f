"""How keepalived watches HAProxy, by `vrrp.track.kind`: one table, the one place a new kind goes.

Each kind names the keepalived.conf.j2 block that tracks HAProxy and the extra host steps it needs on
each balancer (components/keepalived_pair.py declares them, BACKUP first, before keepalived's own step).
A kind missing here raises: it never renders a config without its tracker nor installs nothing silently.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackKind:
    block: str
    """keepalived.conf.j2's block: `script` (a vrrp_script polled by keepalived) or `file` (a track_file)."""
    steps: tuple[str, ...]
    """Host steps that keep the tracked state, in order (each a script of components/render.Renderer.track_step)."""


TRACK_KINDS: dict[str, TrackKind] = {
    # The paper's `killall -0 haproxy`, polled every `interval` seconds by keepalived itself.
    "script": TrackKind(block="script", steps=()),
    # A service following Docker's events writes the track file (files/scripts/haproxy-watch.sh).
    "events": TrackKind(block="file", steps=("haproxy-watch",)),
}


def track_kind(kind: str) -> TrackKind:
    """The table's row for `kind`; an unknown kind is an error, never a default."""
    try:
        return TRACK_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"track kind {kind!r} is not in components/tracking.py TRACK_KINDS {sorted(TRACK_KINDS)}"
        ) from None
