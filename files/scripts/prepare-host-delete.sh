# Undo the sudoers drop-in when the host leaves the stack or the stack is destroyed. It runs last on the
# host: every other step depends on the preparation, so Pulumi deletes them (and their sudo) first. The
# login user keeps the passwordless sudo it needed before the first run (check-connectivity.sh); Docker
# stays installed (README, "destroy").
set -eu
sudo -n rm -f /etc/sudoers.d/pihalb
