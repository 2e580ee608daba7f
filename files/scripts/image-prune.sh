# Remove this host's old images of one kind ($REPOSITORY:*) that no container uses: every change makes a
# new tag, and pulumi-docker's Image deletes nothing, so they would pile up on the SD card. The current
# tag stays; one still used by a container goes at the next change.
set -eu
echo "current: $CURRENT"
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
report_changed
