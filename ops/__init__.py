"""Operating a deployed cluster (any stack: the lab's or the Pis'): status, failover drill, rolling reboot,
shutdown. `python -m ops <verb> --stack <name>`; every host is reached over the program's pinned-key SSH."""
