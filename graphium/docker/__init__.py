"""The Docker engine: the adapter over docker-py and the interpreter that runs tasks on it."""
