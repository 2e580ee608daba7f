"""The lab's two images: the base everything builds FROM (present, pulled, or made with debootstrap),
and the host image built from lab/host/, rebuilt only when its context or its base changed."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound
from docker.models.images import Image

from components.debian import DEBIAN_BASE_IMAGE, DEBIAN_MIRROR, DEBIAN_RELEASE
from components.render import sha256, tree_hash
from lab.docker_engine import DockerEngine, ensure_command, run
from lab.inventory import LABEL_LAB
from lab.output import LabError, first_line, say

HOST_CONTEXT = Path(__file__).resolve().parent / "host"
BASE_IMAGE = DEBIAN_BASE_IMAGE
# The same base under a second name, in every host's daemon: `baseImage` can change without a registry.
BASE_IMAGE_ALIAS = f"localhost/{BASE_IMAGE}"
HOST_IMAGE = "pihalb-lab/pi:latest"
SOURCES_LIST = f"deb {DEBIAN_MIRROR} {DEBIAN_RELEASE} main\n"

LABEL_CONTEXT = "pihalb-lab.context-sha256"
LABEL_IMPORTED_BASE = "pihalb-lab.imported-base"


class Images:
    def __init__(self, engine: DockerEngine):
        self.engine = engine

    @property
    def _docker(self) -> docker.DockerClient:
        return self.engine.client

    def ensure_base(self) -> Image:
        """The base the host image and the program's images build FROM: local, else pulled, else debootstrapped."""
        try:
            image = self._docker.images.get(BASE_IMAGE)
            say(f"base image {BASE_IMAGE}: present")
            return image
        except ImageNotFound:
            pass
        repository, tag = BASE_IMAGE.split(":")
        try:
            say(f"base image {BASE_IMAGE}: pulling")
            return self._docker.images.pull(repository, tag=tag)
        except DockerException as error:
            say(f"base image {BASE_IMAGE}: pull failed ({first_line(error)}); building it with debootstrap")
        return self._import_debootstrapped_base(repository, tag)

    def base_or_fail(self) -> Image:
        try:
            return self._docker.images.get(BASE_IMAGE)
        except ImageNotFound as error:
            raise LabError(f"{BASE_IMAGE} is not on this engine; run `python -m lab up`") from error

    def _import_debootstrapped_base(self, repository: str, tag: str) -> Image:
        ensure_command("debootstrap", package="debootstrap")
        with tempfile.TemporaryDirectory(prefix="pihalb-lab-rootfs-", dir="/var/tmp") as work:
            rootfs = Path(work) / "rootfs"
            run(["debootstrap", "--variant=minbase", DEBIAN_RELEASE, str(rootfs), DEBIAN_MIRROR], timeout=900)
            (rootfs / "etc/apt/sources.list").write_text(SOURCES_LIST)
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / cache).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            say(f"base image {BASE_IMAGE}: importing the debootstrapped root file system")
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            try:
                result = self._docker.api.import_image_from_stream(
                    tar.stdout,
                    repository=repository,
                    tag=tag,
                    changes=[
                        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        'CMD ["bash"]',
                        f"LABEL {LABEL_IMPORTED_BASE}=true",
                    ],
                )
            finally:
                tar.stdout.close()
                tar_status = tar.wait(timeout=60)
        if tar_status != 0 or '"error' in str(result):
            raise LabError(f"importing the debootstrapped base failed (tar exit {tar_status}): {result}")
        return self._docker.images.get(BASE_IMAGE)

    def ensure_host(self, base: Image) -> Image:
        """Build the host image only when its build context or its base changed (recorded in a label)."""
        context = sha256(tree_hash(HOST_CONTEXT), base.id)
        try:
            image = self._docker.images.get(HOST_IMAGE)
            if image.labels.get(LABEL_CONTEXT) == context:
                say(f"host image {HOST_IMAGE}: up to date")
                return image
        except ImageNotFound:
            pass
        say(f"host image {HOST_IMAGE}: building")
        build_log: list[str] = []
        chunks = self._docker.api.build(
            path=str(HOST_CONTEXT),
            tag=HOST_IMAGE,
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            labels={LABEL_CONTEXT: context, LABEL_LAB: "host-image"},
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in chunks:
            if "error" in chunk:
                raise LabError(f"building {HOST_IMAGE} failed: {chunk['error']}\n" + "".join(build_log[-30:]))
            line = chunk.get("stream", "")
            build_log.append(line)
            if line.startswith("Step "):
                say(f"  {line.strip()[:110]}")
        return self._docker.images.get(HOST_IMAGE)

    def remove_unused_host_images(self, current: Image) -> None:
        """Drop host images left behind by a rebuild once no container uses them."""
        for image in self._docker.images.list(filters={"label": f"{LABEL_LAB}=host-image"}):
            if image.id != current.id:
                try:
                    self._docker.images.remove(image.id)
                    say(f"removed the previous host image {image.short_id}")
                except APIError:
                    pass  # still in use by a container outside the inventory: `down` removes both

    def remove_all(self) -> None:
        """The host image, and the base image when the lab made it (a pulled or local one is kept)."""
        self._remove(HOST_IMAGE)
        self._remove(BASE_IMAGE, only_if_label=LABEL_IMPORTED_BASE)

    def _remove(self, name: str, only_if_label: str | None = None) -> None:
        try:
            image = self._docker.images.get(name)
        except ImageNotFound:
            return
        if only_if_label and only_if_label not in image.labels:
            say(f"keeping {name}: the lab did not create it")
            return
        say(f"removing image {name}")
        self._docker.images.remove(image.id, force=True)
