"""pi-ha-lb: settings → rendering → Pulumi components for a Raspberry Pi HA web entry point."""
