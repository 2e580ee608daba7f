"""Plumbing every layer shares (the program, the lab engine, the lab): one way to write a private file
and to build a tar archive."""
