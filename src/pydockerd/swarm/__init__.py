"""Swarm membership: pydockerd joins swarms managed by Moby's dockerd as a
worker (never as a manager). node.py holds the membership (and answers swarm
routes outside a swarm, at no cost); agent.py, rpc.py and the generated
protocol code (proto/) are loaded only when the node joins or is in a swarm."""
