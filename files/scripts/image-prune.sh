# After each build of one kind ($REPOSITORY:*), on this host: what the build left behind, and old tags.
# pulumi-docker builds with the classic builder and never sets its `rm`, so the daemon keeps a stopped
# container for every step that missed the cache (the HAProxy compile tree among them); our Dockerfiles
# label every stage ($KIND_LABEL), which is how they are found. Old tags go unless a container still
# uses them (that one goes at the next change), and with them the layers no other image shares. The
# build stage's last image stays while it belongs to the current tag: it is the cache the next build of
# the same source reuses instead of compiling again.
set -eu
echo "current: $CURRENT ($CURRENT_ID)"
# Containers made from a tag of ours carry the label too (they inherit the image's): the service's own
# ($CONTAINER, kept even stopped) and a config check (`docker run --rm $REPOSITORY:...`, created an instant
# before it runs) are not leftovers. A build's containers run the builder's untagged intermediate images.
leftovers=$(sudo -n docker ps -a --filter "label=$KIND_LABEL" --filter status=exited --filter status=created \
    --format '{{.ID}} {{.Names}} {{.Image}}' |
    awk -v own="$CONTAINER" -v ours="$REPOSITORY:" '$2 != own && index($3, ours) != 1 { print $1 }')
if [ -n "$leftovers" ]; then
    # shellcheck disable=SC2086 # a list of container IDs
    sudo -n docker rm $leftovers >/dev/null
    echo "removed $(printf '%s\n' "$leftovers" | wc -l) build containers"
    changed=yes
fi
in_use=$(sudo -n docker ps -a --format '{{.Image}}')
for image in $(sudo -n docker images --format '{{.Repository}}:{{.Tag}}' "$REPOSITORY"); do
    if [ "$image" = "$CURRENT" ] || printf '%s\n' "$in_use" | grep -qxF "$image"; then
        continue
    fi
    # a container created from the image's ID rather than its name still holds it: then it stays
    if sudo -n docker rmi "$image" >/dev/null 2>&1; then
        echo "removed $image"
        changed=yes
    fi
done
for id in $(sudo -n docker images -q --filter dangling=true --filter "label=$KIND_LABEL"); do
    built_for=$(sudo -n docker image inspect --format "{{index .Config.Labels \"$BUILD_OF_LABEL\"}}" "$id")
    if [ "$built_for" != "$CURRENT" ] && sudo -n docker rmi "$id" >/dev/null 2>&1; then
        echo "removed the untagged image $id${built_for:+ (built for $built_for)}"
        changed=yes
    fi
done
report_changed
