# Undo the images of one kind ($REPOSITORY:*) when the host leaves the stack or the stack is destroyed
# (their containers are deleted first: they depend on this step).
set -eu
sudo -n docker images -q "$REPOSITORY" | sort -u | xargs -r sudo -n docker rmi -f >/dev/null
