"""Resource commands of the ``instamsg`` CLI, built on the REST SDK (``instamsg.api``)."""
