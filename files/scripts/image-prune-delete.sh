# Undo the images of one kind ($REPOSITORY:*) when the host leaves the stack or the stack is destroyed
# (their containers are deleted first: they depend on this step): the tags, the build cache and any
# container a build left, all found by our Dockerfiles' label ($KIND_LABEL). An image something outside
# the stack still runs is kept, and said. The base image our Dockerfiles build FROM is not ours: it stays.
set -eu
for tag in $(sudo -n docker images --format '{{.Repository}}:{{.Tag}}' "$REPOSITORY"); do
    sudo -n docker rmi "$tag" >/dev/null 2>&1 || echo "kept $tag: a container still uses it"
done
sudo -n docker container prune --force --filter "label=$KIND_LABEL" >/dev/null
sudo -n docker image prune --all --force --filter "label=$KIND_LABEL" >/dev/null
