# Remove this host's old images of one kind ($REPOSITORY:*) that no container uses: every change makes a
# new tag, and pulumi-docker's Image deletes nothing, so they would pile up on the SD card. The current
# tag stays; one still used by a container goes at the next change.
set -eu
echo "current: $CURRENT"
for image in $(sudo -n docker images --format '{{.Repository}}:{{.Tag}}' "$REPOSITORY"); do
    [ "$image" = "$CURRENT" ] && continue
    if [ -z "$(sudo -n docker ps -aq --filter "ancestor=$image")" ]; then
        sudo -n docker rmi "$image" >/dev/null
        echo "removed $image"
        changed=yes
    fi
done
report_changed
