"""pi-ha-lb: wiring only. Settings are validated before any resource is declared."""

from pathlib import Path

import pulumi

from components.cluster import deploy
from components.host import local_ssh_dir
from components.render import FILES
from components.settings import CONFIG_NAMESPACE, SECRET_KEYS, check_secret, load, running_stack_keys
from components.tls_host import tls_material


def main(files: Path = FILES) -> None:
    """Declare the stack, rendering from the files root `files` (the lab engine passes a changed copy)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    settings = load(config.get_object, config.get, running_stack_keys())
    # Each secret as its rule returns it (an SSH key in the form OpenSSH loads), still a Pulumi secret.
    secrets = {
        key: config.require_secret(key).apply(lambda value, key=key: check_secret(key, value)) for key in SECRET_KEYS
    }
    tls = tls_material(config, settings.cluster)  # None without haproxy.tls
    outputs = deploy(settings, secrets, local_ssh_dir(pulumi.get_project(), pulumi.get_stack()), files, tls)
    for key, value in outputs.items():
        pulumi.export(key, value)


if __name__ == "__main__":  # as Pulumi runs the program
    main()
