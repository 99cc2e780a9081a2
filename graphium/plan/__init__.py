"""Planning: desired state against observed and stored state, into actions and a task DAG (pure)."""
