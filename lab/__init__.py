"""Five simulated Raspberry Pis (systemd + SSH containers) for applying the program for real on one machine."""

from components.settings import Host
from lab.lab import HostStatus, Lab
from lab.output import LabError

__all__ = ["Host", "HostStatus", "Lab", "LabError"]
