# Undo the images of one kind ($REPOSITORY:*) when the host leaves the stack or the stack is destroyed
# (their containers are deleted first: they depend on this step). The tags go; their build-cache layers
# stay untagged (`docker image prune` removes them), so a later `up` rebuilds without recompiling. A tag
# something outside the stack still runs is kept, and said.
set -eu
for tag in $(sudo -n docker images --format '{{.Repository}}:{{.Tag}}' "$REPOSITORY"); do
    sudo -n docker rmi --no-prune "$tag" >/dev/null 2>&1 || echo "kept $tag: a container still uses it"
done
