#!/bin/sh
# Lab only (the host image's, not the program's): run by systemd before keepalived starts, a drop-in of the
# lab's host image. This VM's kernel has RT group scheduling (CONFIG_RT_GROUP_SCHED), which Debian's and
# Ubuntu's kernels for the Pi do not: with it a new cgroup has no real-time budget, and the program's
# real-time hook for keepalived (files/scripts/keepalived.sh) is refused (EPERM) in the unit's cgroup. The lab
# gives each host container a budget (lab/hosts.py); this passes it on to the unit's slice and to the unit, so
# keepalived gets SCHED_RR here as it does on a Pi.
set -eu
root=/sys/fs/cgroup/cpu
[ -e "$root/cpu.rt_runtime_us" ] || exit 0
unit=$(sed -n 's/^[0-9]*:cpu\(,cpuacct\)\{0,1\}:\(.*\)$/\2/p' /proc/self/cgroup | head -n 1)
slice=$(dirname "$unit")
budget=$(cat "$root$(dirname "$slice")/cpu.rt_runtime_us")
for cgroup in "$slice" "$unit"; do
    current=$(cat "$root$cgroup/cpu.rt_runtime_us")
    [ "$current" = "$budget" ] || echo "$budget" > "$root$cgroup/cpu.rt_runtime_us"
done
