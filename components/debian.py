"""The Debian release everything is built on, one setting, and what depends on the release by name.

The program's images (`baseImage`'s default), the lab's hosts and base image (lab/images.py,
lab/host/Dockerfile through its BASE_IMAGE build arg), scripts/check-arm64's debootstrap and the bench's
pinned HAProxy source version all read it from here. A new release is this module: its name, the runtime
libraries HAProxy's compile links against under that release's package names, and a HAProxy source
version its mirror serves. What the compile needs (the -dev packages in files/haproxy/Dockerfile) keeps
its names across releases.
"""

from __future__ import annotations

DEBIAN_RELEASE = "bookworm"
DEBIAN_BASE_IMAGE = f"debian:{DEBIAN_RELEASE}-slim"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The packages of the libraries files/haproxy/Dockerfile's compile links against (USE_OPENSSL, USE_PCRE2,
# USE_ZLIB), by their names in DEBIAN_RELEASE: the runtime stage installs them (HAPROXY_RUNTIME_PACKAGES).
HAPROXY_RUNTIME_PACKAGES = ("libssl3", "libpcre2-8-0", "zlib1g")
# A HAProxy source version of DEBIAN_RELEASE (`haproxy.source.version`), the one this machine's mirror
# serves: the bench's and the lab tests' "HAProxy source version pinned" change.
HAPROXY_PINNED_VERSION = "2.6.12-1+deb12u3"
