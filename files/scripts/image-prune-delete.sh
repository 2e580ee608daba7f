# Undo the images of one kind ($REPOSITORY:*) when the host leaves the stack or the stack is destroyed
# (their containers are deleted first: they depend on this step). The tags go; their build-cache layers
# stay untagged (`docker image prune` removes them), so a later `up` rebuilds without recompiling.
set -eu
tags=$(sudo -n docker images --format '{{.Repository}}:{{.Tag}}' "$REPOSITORY")
if [ -n "$tags" ]; then
    # shellcheck disable=SC2086 # a list of image tags
    sudo -n docker rmi --no-prune $tags >/dev/null
fi
