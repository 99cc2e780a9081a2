"""The control server's routes, one router per resource (tasks, agents, stacks, events)."""
