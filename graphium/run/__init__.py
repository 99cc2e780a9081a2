"""Running plans: the runner walks a task DAG, the deployer owns a stack's run, events tell."""
