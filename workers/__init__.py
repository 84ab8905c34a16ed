"""arq workers: settings, start-up, and one thin module of job functions per domain."""
