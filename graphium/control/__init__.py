"""Pull mode: the control server, the agent on each host, and the client of the server's API."""
