"""Command-line entry points: ``tokenginx-server`` and ``tokenginx-client``."""
