"""The failover and change benchmark (`bench/failover`)."""
