"""The records a deployment leaves: tasks, stack records and events.

They sit below the planner (which writes tasks and reads stack records) and the store (which keeps
all three), so that no import runs upward.
"""
