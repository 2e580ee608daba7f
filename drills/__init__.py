"""What tests and the bench do to a running lab: the stack layered on it, faults, observation, load.

Every drill takes the lab's façade (`lab.lab.Lab`) and reads the topology from it, never a literal.
"""
