"""Five simulated Raspberry Pis (systemd + SSH containers) for applying the program for real on one machine."""

from lab.lab import Host, Lab, LabError

__all__ = ["Host", "Lab", "LabError"]
